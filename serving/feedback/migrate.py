"""Bring an existing feedback store up to the current schema: new tables and added (nullable) columns.

``Base.metadata.create_all`` creates missing tables but never alters an existing one, so a store created
by an earlier Parley has ``feedback`` without ``reason`` and ``messages`` without ``variant_of``. The upgrade
adds each column listed in :data:`serving.feedback.models.ADDED_COLUMNS` that the table lacks, with
``ALTER TABLE ... ADD COLUMN`` (nullable: old rows keep their meaning, old readers keep working). It runs
whenever a :class:`~serving.feedback.store.FeedbackStore` opens a database, is idempotent, and is safe
when several processes open the same store at once (SQLite: one ``BEGIN IMMEDIATE`` write transaction
that re-reads the columns; PostgreSQL: ``ADD COLUMN IF NOT EXISTS`` under a transaction-level advisory lock).
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, inspect, text

from serving.feedback.engine import WRITE_OPTION
from serving.feedback.models import ADDED_COLUMNS, Base

_PG_LOCK_KEY = 0x7061726C6579  # "parley": serializes concurrent upgrades of one PostgreSQL database


def _columns(conn: Connection, table: str) -> set[str]:
    if conn.dialect.name == "sqlite":  # the inspector may cache; PRAGMA reads inside this transaction
        return {row[1] for row in conn.exec_driver_sql(f'PRAGMA table_info("{table}")')}
    return {c["name"] for c in inspect(conn).get_columns(table)}


def missing_columns(conn: Connection) -> list[tuple[str, str, str]]:
    """The (table, column, DDL) entries of ADDED_COLUMNS whose table exists without the column."""
    tables = set(inspect(conn).get_table_names())
    return [(t, c, ddl) for t, c, ddl in ADDED_COLUMNS if t in tables and c not in _columns(conn, t)]


def is_current(engine: Engine) -> bool:
    """Whether every table and added column exists (a read: an up-to-date store is never locked for writing)."""
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        return set(Base.metadata.tables) <= tables and not missing_columns(conn)


def upgrade(engine: Engine) -> list[str]:
    """Create missing tables and add missing columns; returns ``table.column`` for each column added."""
    if is_current(engine):
        return []
    writer = engine.execution_options(**{WRITE_OPTION: True})
    added = []
    with writer.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        Base.metadata.create_all(conn)  # new tables (checkfirst): comparisons, idempotency_keys
        for table, column, ddl in missing_columns(conn):
            exists = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
            conn.exec_driver_sql(f'ALTER TABLE "{table}" ADD COLUMN {exists}"{column}" {ddl}')
            added.append(f"{table}.{column}")
    return added


class SideTables:
    """Tables a feature keeps beside the store's own (ticket closures, explanations): created on first use.

    ``create_all`` only adds missing tables, so an existing store gains them without a migration; the engines
    already checked are remembered, so a request pays for the check once per process.
    """

    def __init__(self, metadata) -> None:
        import weakref

        self.metadata = metadata
        self._ready: weakref.WeakSet[Engine] = weakref.WeakSet()

    def ensure(self, engine: Engine) -> None:
        if engine in self._ready:
            return
        self.metadata.create_all(engine.execution_options(**{WRITE_OPTION: True}))
        self._ready.add(engine)
