"""Test databases: where the data files are, one PostgreSQL schema per test or module,
and the test Redis.

PostgreSQL comes from TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test).
Outside CI an unreachable server skips the PostgreSQL half with the reason; with CI=true it
fails the run instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from etl.core.settings import get_settings

DATA = Path(__file__).parent / "data"
REAL = DATA / "real"
FORMATS = DATA / "formats"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


def postgres_admin() -> Engine:
    """An engine on the test server, or a skip (a failure in CI) when it is unreachable."""
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


@contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A database URL whose connections live in a fresh schema, dropped afterwards."""
    admin = postgres_admin()
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
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


@contextmanager
def postgres_database(prefix: str) -> Iterator[URL]:
    """A fresh database on the test server (as an operator's platform hands one over),
    dropped afterwards; yields its URL."""
    admin = postgres_admin().execution_options(isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.engine.dispose()


def require_redis() -> str:
    """The test Redis URL, or a skip (a failure in CI) when Redis does not answer."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        reason = f"Redis unreachable at {REDIS_URL}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return REDIS_URL
