"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL server
(one schema per test, see `tests.databases`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from etl.core.settings import Settings, get_settings
from etl.db.engine import create_db_engine, migrate
from tests.databases import postgres_schema
from tests.venue_doubles import VenueDouble, kraken_and_bitstamp


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Live calls go to a closed local port unless a test points them at its double; the
    ccxt venues are polled only where a test asks for them."""
    monkeypatch.setenv("GEMINI_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("EXCHANGES", "gemini")
    monkeypatch.delenv("EXCHANGE_URLS", raising=False)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    with postgres_schema("t") as url:
        yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return get_settings(database_url=database_url, csv_chunk_rows=1000, _env_file=None)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = create_db_engine(settings)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def doubles() -> Iterator[dict[str, VenueDouble]]:
    """Kraken and Bitstamp doubles (tests/venue_doubles.py), served for one test."""
    with kraken_and_bitstamp() as made:
        yield made
