"""Schema versions: check on open, create a new archive, upgrade an older one.

Version 1 is the initial schema. `MIGRATIONS[k]` upgrades an archive at version k + 1 to k + 2,
so the code's version is ``1 + len(MIGRATIONS)``. To change the schema: change the tables in
tables.py (a new archive is created from them directly) and append one function here that brings
an archive at the previous version to the same shape, on the connection it is given (ALTER TABLE,
data fixes). Never edit, reorder or remove a published migration. All pending migrations and the
new stamp run in one transaction, so a failing migration leaves the archive as it was.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlmodel import SQLModel

from autorec.archive.connect import WRITE, Target, enable_wal
from autorec.archive.errors import ArchiveError
from autorec.archive.tables import TABLES, UNIQUE_HASH_WHERE, SchemaVersion

Migration = Callable[[sa.Connection], None]
SCHEMA_LOCK_KEY = 0x6175746F726563  # "autorec": the advisory lock that serialises schema changes



def _v2_contract_and_reported(conn: sa.Connection) -> None:
    """Version 2: runs store their space contract; candidates their reported (test) metrics."""
    conn.execute(sa.text("ALTER TABLE run ADD COLUMN space_contract JSON"))
    conn.execute(sa.text("ALTER TABLE candidate ADD COLUMN reported JSON"))


def _v3_screened_candidates(conn: sa.Connection) -> None:
    """Version 3: a screened candidate (never evaluated) does not own its params hash, so the
    same params proposed again are evaluated rather than recorded as its duplicate."""
    conn.execute(sa.text("DROP INDEX uq_candidate_run_hash"))
    conn.execute(sa.text(
        "CREATE UNIQUE INDEX uq_candidate_run_hash ON candidate (run_id, hash) "
        f"WHERE {UNIQUE_HASH_WHERE}"
    ))  # fmt: skip


MIGRATIONS: list[Migration] = [_v2_contract_and_reported, _v3_screened_candidates]


def latest_version() -> int:
    """The schema version this code writes."""
    return 1 + len(MIGRATIONS)


def _probe(conn: sa.Connection) -> tuple[int | None, bool]:
    """(stamped version or None, whether the database holds any table at all)."""
    tables = sa.inspect(conn).get_table_names()
    if SchemaVersion.__tablename__ not in tables:
        return None, bool(tables)
    version = conn.execute(sa.select(SchemaVersion.__table__.c.version)).scalar()
    return version, True


def open_schema(engine: sa.Engine, target: Target, create: bool) -> int:
    """Make the database at `target` an archive at the latest version; return the version found.

    Refusals (newer schema, a database that is not an archive, no archive while not creating)
    happen after a read-only look, before anything is written.
    """
    latest = latest_version()
    try:
        with engine.connect() as conn:
            found, has_tables = _probe(conn)
    except sa.exc.DatabaseError as exc:
        raise ArchiveError(f"cannot read the archive {target.label}: {exc.orig}") from None
    if found is not None and found > latest:
        raise ArchiveError(
            f"{target.label} was written by a newer autorec (schema {found} > {latest}); "
            "upgrade autorec"
        )
    if found is None and has_tables:
        raise ArchiveError(
            f"{target.label} is a database but not an autorec archive (no schema_version table)"
        )
    if found is None and not create:
        raise ArchiveError(f"no archive at {target.label}")
    if found == latest:
        enable_wal(engine, target)
        return found

    enable_wal(engine, target)
    # Another process may have created or upgraded it since the look above: decide again, under
    # the write lock.
    with engine.execution_options(**{WRITE: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two searches starting on one new database would both create the tables, and
            # PostgreSQL's catalogue refuses the second (pg_type unique violation): take a
            # transaction-scoped advisory lock, so the second waits and then finds the archive.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        current, has_tables = _probe(conn)
        if current is None:
            if has_tables:
                raise ArchiveError(f"{target.label} is a database but not an autorec archive")
            SQLModel.metadata.create_all(conn, tables=[t.__table__ for t in TABLES])
            conn.execute(sa.insert(SchemaVersion.__table__).values(id=1, version=latest))
        elif current < latest:
            upgrade(conn, current)
    return 0 if found is None else found


def upgrade(conn: sa.Connection, current: int) -> None:
    """Run the migrations from `current` to the latest version and stamp it, inside `conn`'s
    transaction."""
    for version in range(current, latest_version()):
        MIGRATIONS[version - 1](conn)
    conn.execute(sa.update(SchemaVersion.__table__).values(version=latest_version()))
