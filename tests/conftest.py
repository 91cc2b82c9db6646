"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL server.

PostgreSQL comes from TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test);
each test gets its own schema, dropped afterwards. Outside CI an unreachable server skips
the PostgreSQL half with the reason; with CI=true it fails the run instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from etl.core.settings import Settings, get_settings
from etl.db.engine import create_db_engine, migrate

DATA = Path(__file__).parent / "data"
REAL = DATA / "real"
FORMATS = DATA / "formats"
POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


def _postgres_admin() -> Engine:
    engine = create_engine(get_settings(database_url=POSTGRES_URL).database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        reason = f"PostgreSQL unreachable at {POSTGRES_URL}: {exc.orig}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return engine


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Live calls go to a closed local port unless a test points them at its double."""
    monkeypatch.setenv("GEMINI_BASE_URL", "http://127.0.0.1:9")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    admin = _postgres_admin()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    base = get_settings(database_url=POSTGRES_URL).database_url
    joiner = "&" if "?" in base else "?"
    try:
        yield f"{base}{joiner}options=-csearch_path%3D{schema}&application_name={schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return get_settings(database_url=database_url, csv_chunk_rows=1000, _env_file=None)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = create_db_engine(settings)
    migrate(engine)
    yield engine
    engine.dispose()
