"""One pooled SQLAlchemy engine per store: SQLite in WAL mode by default, PostgreSQL by URL.

SQLite gets WAL (readers never block the writer), a busy timeout (concurrent writers wait instead of
failing with "database is locked"), foreign keys, and ``BEGIN IMMEDIATE`` for write transactions so a
transaction that reads before it writes cannot fail on a stale snapshot. Bad URLs and unreachable
servers become one-line :class:`FeedbackStoreError` messages instead of driver tracebacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from groundwork.errors import ParleyError

SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "parley_write"  # execution option that makes SQLite open the transaction with BEGIN IMMEDIATE


class FeedbackStoreError(ParleyError):
    """The feedback database URL is malformed, its driver is missing, or the server cannot be reached."""


def _redacted_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def parse_url(url: str | Path) -> URL:
    """A SQLAlchemy URL; a bare path means a SQLite file. Only SQLite and PostgreSQL are supported."""
    if isinstance(url, Path) or (isinstance(url, str) and "://" not in url and url.strip()):
        return URL.create("sqlite", database=str(Path(url).expanduser()))
    if not isinstance(url, str) or not url.strip():
        raise FeedbackStoreError("feedback database URL is empty (example: sqlite:///feedback.db)")
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise FeedbackStoreError(f"malformed feedback database URL {url!r}: {exc}") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise FeedbackStoreError(
            f"unsupported feedback database {backend!r} in {_redacted_url(parsed)}: use sqlite:///path.db "
            "or postgresql+psycopg://user:password@host/db"
        )
    if backend == "postgresql" and parsed.get_driver_name() in ("psycopg2", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver Parley installs
    return parsed


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below emit BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_engine(url: str | Path, *, must_exist: bool = False, **engine_kwargs: Any) -> Engine:
    """Create the engine, apply per-backend settings and check that the database answers.

    ``must_exist`` refuses to create a new SQLite file (readers such as the export must not).
    """
    parsed = parse_url(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise FeedbackStoreError("feedback store needs a SQLite file (in-memory databases are per connection)")
        if not Path(database).expanduser().resolve().parent.is_dir():
            raise FeedbackStoreError(f"folder of the SQLite feedback database does not exist: {database}")
        if must_exist and not Path(database).expanduser().is_file():
            raise FeedbackStoreError(f"SQLite feedback database not found: {database}")
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs.update(pool_size=10, max_overflow=20, pool_timeout=30)
        kwargs["connect_args"] = {"connect_timeout": 10}
    kwargs.update(engine_kwargs)
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise FeedbackStoreError(f"cannot use feedback database {_redacted_url(parsed)}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise FeedbackStoreError(f"cannot reach feedback database {_redacted_url(parsed)}: {reason}") from None
    return engine
