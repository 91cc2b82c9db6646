"""API fixtures: one database per dialect per module, loaded once with the real sample
through the real pipeline, and apps built on it with `create_app()`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.main import create_app
from api.settings import get_api_settings
from etl.db.engine import create_db_engine
from etl.extract.gemini_client import reset_breakers
from etl.pipeline import run_pipeline
from etl.sources.csv_files import CsvSource
from tests.api.helpers import KEY, api_settings
from tests.databases import REAL, postgres_schema

SAMPLE = ["coin_Bitcoin.csv", "coin_Ethereum.csv", "Gemini_BTCUSD_d.csv", "BTC-USD.csv"]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'api.db'}"
    else:
        with postgres_schema("a") as url:
            yield _loaded(url)
        return
    yield _loaded(url)


def _loaded(url: str) -> str:
    """`url` with the real sample loaded through the real pipeline."""
    settings = get_api_settings(database_url=url, _env_file=None)
    engine = create_db_engine(settings)
    summary = run_pipeline(settings, sources=[CsvSource([REAL / f for f in SAMPLE])], engine=engine)
    assert summary.status == "success", summary.error
    engine.dispose()
    return url


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
