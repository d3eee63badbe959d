"""From a URL or a path to a configured SQLAlchemy engine, refusing files that are not SQLite.

SQLite settings, per connection: a 30 s busy timeout, foreign keys on, synchronous=NORMAL (safe with
WAL). The file is switched to WAL once, after the schema check (see migrations.open_schema), so a
refused file is never written. Write transactions start with BEGIN IMMEDIATE: a deferred
transaction that reads and then writes cannot wait for another writer (SQLite answers "database is
locked" at once instead of honouring the busy timeout), an immediate one queues for the lock.

A SQLite file that cannot be written (mode 0444, a read-only folder or mount, `chattr +i`) is
opened read-only by readers: SQLite's `mode=ro`, or `immutable=1` when no write-ahead log is
pending, which creates no -wal/-shm file at all. A writer refuses it before connecting
(`unwritable` says why), so a refused search leaves the folder as it was.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from dataclasses import dataclass, replace
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from autorec.archive.errors import ArchiveError

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10  # a database server that does not answer within this is an error
WRITE = "autorec_write"  # execution option that makes a transaction BEGIN IMMEDIATE


@dataclass(frozen=True)
class Target:
    """Where an archive lives: the URL to connect to, and the file when it is a SQLite file."""

    url: sa.URL
    path: Path | None  # None for in-memory SQLite and for server databases
    label: str  # what error messages call it: the file path, or the URL without its password
    readonly: bool = False  # opened with mode=ro / immutable=1: no write, no WAL switch

    def as_readonly(self) -> Target:
        return replace(self, readonly=True)

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
        label = parsed.render_as_string(hide_password=True)
        if parsed.drivername in ("postgresql", "postgres"):
            # A bare postgresql:// means psycopg 3 (autorec[postgres]), not SQLAlchemy's psycopg2.
            parsed = parsed.set(drivername="postgresql+psycopg")
        return Target(parsed, None, label)
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


def unwritable(target: Target) -> str | None:
    """Why a SQLite archive file cannot be written (None when it can, or is not a file). Opening
    the file for update writes nothing; the folder must take the -wal and -shm files."""
    path = target.path
    if path is None:
        return None
    if path.exists():
        try:
            with path.open("r+b"):
                pass
        except OSError as exc:
            return f"the file is read-only ({exc.strerror or exc})"
    if not os.access(path.parent, os.W_OK):
        return f"its folder {path.parent} is read-only"
    return None


def _readonly_uri(path) -> str:
    """mode=ro reads a pending write-ahead log (and may need to create -shm for it); without
    one, immutable=1 reads the file alone and never creates anything beside it."""
    wal = path.with_name(path.name + "-wal")
    pending = wal.exists() and wal.stat().st_size > 0
    return f"file:{urllib.parse.quote(str(path))}?" + ("mode=ro" if pending else "immutable=1")


def make_engine(target: Target) -> sa.Engine:
    if not target.is_sqlite:
        return _server_engine(target)
    kwargs: dict = {"connect_args": {"check_same_thread": False}}
    if target.path is None:  # in-memory: one shared connection, or every session sees a new db
        kwargs["poolclass"] = StaticPool
    if target.readonly and target.path is not None:
        uri = _readonly_uri(target.path)
        kwargs["creator"] = lambda: sqlite3.connect(uri, uri=True, check_same_thread=False)
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


def _server_engine(target: Target) -> sa.Engine:
    """A database server (PostgreSQL): a bounded connect wait, so an unreachable host is one
    line after seconds rather than a hang, and a missing driver is a line saying what to install."""
    kwargs: dict = {"pool_pre_ping": True}
    if target.url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        return sa.create_engine(target.url, **kwargs)
    except ImportError as exc:
        extra = " (pip install 'autorec[postgres]')" if "psycopg" in str(exc) else ""
        raise ArchiveError(
            f"cannot open the archive {target.label}: its database driver is not installed: "
            f"{exc}{extra}"
        ) from None


def one_line(message: object) -> str:
    """A driver's message (PostgreSQL's span lines, with hints) as one line."""
    return " ".join(str(message).split())


def enable_wal(engine: sa.Engine, target: Target) -> None:
    """Switch a SQLite file to WAL (persistent, so once per open is plenty)."""
    if not target.is_sqlite or target.path is None or target.readonly:
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
