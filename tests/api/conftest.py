"""API fixtures: one database per dialect per module, loaded once with the real sample
through the real pipeline, and apps built on it with `create_app()`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.main import create_app
from api.settings import ApiSettings, get_api_settings
from etl.db.engine import create_db_engine
from etl.extract.gemini_client import reset_breakers
from etl.pipeline import run_pipeline
from etl.sources.csv_files import CsvSource
from tests.conftest import POSTGRES_URL, REAL, _postgres_admin

KEY = "test-key-0123456789abcdef"
OTHER_KEY = "rotated-key-abcdef0123456789"
SAMPLE = ["coin_Bitcoin.csv", "coin_Ethereum.csv", "Gemini_BTCUSD_d.csv", "BTC-USD.csv"]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'api.db'}"
        cleanup = None
    else:
        admin = _postgres_admin()
        schema = f"a_{uuid.uuid4().hex[:12]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        base = get_api_settings(database_url=POSTGRES_URL, _env_file=None).database_url
        url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
        cleanup = (admin, schema)
    settings = get_api_settings(database_url=url, _env_file=None)
    engine = create_db_engine(settings)
    summary = run_pipeline(settings, sources=[CsvSource([REAL / f for f in SAMPLE])], engine=engine)
    assert summary.status == "success", summary.error
    engine.dispose()
    yield url
    if cleanup is not None:
        admin, schema = cleanup
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def api_settings(database_url: str, **overrides: object) -> ApiSettings:
    values: dict[str, object] = {
        "database_url": database_url, "api_keys": f"{KEY},{OTHER_KEY}",
        "allowed_hosts": "testserver,localhost", "gemini_base_url": "http://127.0.0.1:9",
        "gemini_retries": 1, "rate_limit_default": "10000/minute",
        "rate_limit_candles": "10000/minute", "rate_limit_probes": "10000/minute",
        "cache_ttl_seconds": 0, "log_level": "WARNING", "_env_file": None,
    }  # fmt: skip
    values.update(overrides)
    return get_api_settings(**values)


@pytest.fixture
def client(api_database: str) -> Iterator[TestClient]:
    reset_breakers()
    with TestClient(create_app(api_settings(api_database)), raise_server_exceptions=False) as c:
        c.headers["X-API-Key"] = KEY
        yield c


@pytest.fixture
def engine_for(api_database: str) -> Iterator[Engine]:
    engine = create_db_engine(api_settings(api_database))
    yield engine
    engine.dispose()


def problem(response: object) -> dict[str, object]:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body: dict[str, object] = response.json()
    assert {"type", "title", "status", "detail", "code", "request_id"} <= body.keys()
    assert body["status"] == response.status_code
    return body


__all__ = ["KEY", "OTHER_KEY", "Path", "api_settings", "problem"]
