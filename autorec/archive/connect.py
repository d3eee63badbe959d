"""From a URL or a path to a configured SQLAlchemy engine, refusing files that are not SQLite.

SQLite settings, per connection: a 30 s busy timeout, foreign keys on, synchronous=NORMAL (safe with
WAL). The file is switched to WAL once, after the schema check (see migrations.open_schema), so a
refused file is never written. Write transactions start with BEGIN IMMEDIATE: a deferred
transaction that reads and then writes cannot wait for another writer (SQLite answers "database is
locked" at once instead of honouring the busy timeout), an immediate one queues for the lock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from autorec.archive.errors import ArchiveError

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 30_000
WRITE = "autorec_write"  # execution option that makes a transaction BEGIN IMMEDIATE


@dataclass(frozen=True)
class Target:
    """Where an archive lives: the URL to connect to, and the file when it is a SQLite file."""

    url: sa.URL
    path: Path | None  # None for in-memory SQLite and for server databases
    label: str  # what error messages call it: the file path, or the URL without its password

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"


def resolve(url: str | os.PathLike[str]) -> Target:
    """A SQLAlchemy URL, or a bare path meaning a SQLite file; relative paths against the cwd."""
    text = os.fspath(url)
    if "://" not in text:
        path = Path(text).expanduser().absolute()
        return Target(sa.make_url("sqlite://").set(database=str(path)), path, str(path))
    try:
        parsed = sa.make_url(text)
    except sa.exc.ArgumentError as exc:
        raise ArchiveError(f"not a database URL: {text!r} ({exc})") from None
    if parsed.get_backend_name() != "sqlite":
        return Target(parsed, None, parsed.render_as_string(hide_password=True))
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return Target(parsed, None, text)
    path = Path(database).expanduser().absolute()
    return Target(parsed.set(database=str(path)), path, str(path))


def check_file(target: Target, create: bool) -> None:
    """Refuse a missing file (unless creating) or one that is not SQLite, without writing to it."""
    path = target.path
    if path is None:
        return
    if not path.exists():
        if not create:
            raise ArchiveError(f"no archive at {path}")
        if not path.parent.is_dir():
            raise ArchiveError(f"cannot create an archive at {path}: {path.parent} is not a folder")
        return
    if not path.is_file():
        raise ArchiveError(f"{path} is not a file, so it cannot be an archive")
    try:
        with path.open("rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise ArchiveError(f"cannot read the archive {path}: {exc}") from None
    # An empty file is an empty SQLite database (what sqlite3 itself creates first).
    if header and header != SQLITE_HEADER:
        raise ArchiveError(f"{path} is not a SQLite database, so it cannot be an archive")


def make_engine(target: Target) -> sa.Engine:
    if not target.is_sqlite:
        return sa.create_engine(target.url, pool_pre_ping=True)
    kwargs: dict = {"connect_args": {"check_same_thread": False}}
    if target.path is None:  # in-memory: one shared connection, or every session sees a new db
        kwargs["poolclass"] = StaticPool
    engine = sa.create_engine(target.url, **kwargs)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def enable_wal(engine: sa.Engine, target: Target) -> None:
    """Switch a SQLite file to WAL (persistent, so once per open is plenty)."""
    if not target.is_sqlite or target.path is None:
        return
    # Through the driver: SQLAlchemy would wrap the pragma in a transaction, where it cannot run.
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        cursor.close()
    finally:
        raw.close()
    if str(mode).lower() != "wal":
        raise ArchiveError(f"cannot switch {target.label} to WAL mode (journal_mode is {mode})")
