"""A real PostgreSQL server for the archive tests: started once per session in a temporary
folder (tests/archive_pg/pg_server.py), a fresh database for every test."""

from __future__ import annotations

import itertools

import pytest

import pg_server

_names = itertools.count()


@pytest.fixture(scope="session")
def pg():
    if pg_server.binaries() is None:
        pytest.skip("needs PostgreSQL server binaries (.ci/run installs postgresql)")
    server = pg_server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg) -> str:
    """The URL of a new, empty database on the session's server."""
    return pg.create_database(f"t{next(_names)}")
