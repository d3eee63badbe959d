"""Options and helpers shared by the commands that read or write the archive."""

from __future__ import annotations

import os

import typer

DB_HELP = "archive: a SQLite file or any SQLAlchemy URL (env AUTOREC_DB; default ./runs.db)"


def db_option():
    return typer.Option(None, "--db", help=DB_HELP)


def db_url(db: str | None) -> str:
    return db or os.environ.get("AUTOREC_DB") or "runs.db"


def open_archive(db: str | None, create: bool = False):
    """The archive at --db; readers never create an empty one by accident."""
    from autorec.archive import Archive

    return Archive(db_url(db), create=create)
