"""PostgreSQL and SQLite fixtures for the feedback-store tests (imported by tests/test_feedback_*.py).

Import the ``*_fixture`` functions; pytest registers them under their short ``name`` (``store``,
``db_url``, ``pg_url``...), so test parameters do not shadow the imported names.

PostgreSQL comes from ``PARLEY_TEST_PG_URL`` when set; otherwise ``.ci/start-postgres.sh`` starts the
local cluster once per session. The tests skip only when PostgreSQL is not installed and ``CI`` is not
true; on CI a missing or broken server fails the run. Every test gets a database of its own.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from serving.feedback.store import FeedbackStore

ROOT = Path(__file__).resolve().parent.parent
START_SCRIPT = ROOT / ".ci" / "start-postgres.sh"
DEFAULT_PG_URL = "postgresql+psycopg://parley:parley@127.0.0.1:5432/parley_test"
BACKENDS = ["sqlite", "postgresql"]


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _postgres_installed() -> bool:
    binaries = ("pg_ctlcluster", "pg_ctl", "postgres")
    return any(shutil.which(b) for b in binaries) or bool(glob.glob("/usr/lib/postgresql/*/bin/postgres"))


@pytest.fixture(scope="session", name="pg_server_url")
def pg_server_url_fixture() -> str:
    """URL of a PostgreSQL database whose role may CREATE DATABASE."""
    url = os.environ.get("PARLEY_TEST_PG_URL")
    if url:
        return url
    if not _postgres_installed() and not _on_ci():
        pytest.skip("PostgreSQL is not installed (bash .ci/system-deps.sh); with CI=true this is a failure")
    proc = subprocess.run(["bash", str(START_SCRIPT)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f".ci/start-postgres.sh failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if lines and lines[-1].startswith("postgresql") else DEFAULT_PG_URL


@pytest.fixture(scope="session", name="pg_admin")
def pg_admin_fixture(pg_server_url: str):
    engine = create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server must fail loudly, not skip
        pytest.fail(f"cannot reach test PostgreSQL at {make_url(pg_server_url).render_as_string()}: {exc}")
    yield engine
    engine.dispose()


@pytest.fixture(name="pg_url")
def pg_url_fixture(pg_admin) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"parley_t_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(pg_admin.url).set(database=name).render_as_string(hide_password=False)
    with pg_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS, name="db_url")
def db_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(name="store")
def store_fixture(db_url: str) -> Iterator[FeedbackStore]:
    with FeedbackStore(db_url) as s:
        yield s
