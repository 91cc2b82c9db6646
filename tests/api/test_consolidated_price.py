"""One consolidated price end to end: Gemini's double (its own client) and the Kraken and
Bitstamp doubles (through the real ccxt) loaded by the real pipeline, then `/latest`,
`/symbol/{s}` and `/metrics` on SQLite and PostgreSQL. Bitstamp quotes 20% high: the
consolidated price must not move with it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from etl.extract.gemini_client import GeminiClient, reset_breakers
from etl.pipeline import run_pipeline
from etl.sources.base import Source
from etl.sources.ccxt_venues import VenueSource
from etl.sources.gemini import GeminiSource
from tests.api.helpers import api_settings
from tests.gemini_double import GeminiDouble
from tests.gemini_double import start as start_gemini
from tests.gemini_double import stop as stop_gemini
from tests.venue_doubles import FAST, PRICES, BitstampDouble, KrakenDouble, start, stop


@pytest.fixture
def loaded(api_database: str, engine_for: Engine) -> Iterator[None]:
    """The three venues' tickers and bars, loaded now (fresh), as one pipeline run."""
    now = int(time.time() * 1000)
    gemini = start_gemini(GeminiDouble(now_ms=now, candle_count=3))
    kraken = start(KrakenDouble(now_ms=now))
    bitstamp = start(BitstampDouble(now_ms=now, price_factor=1.2))  # a venue 20% off
    reset_breakers()
    settings = api_settings(
        api_database,
        gemini_base_url=gemini.url,
        coin_ids=["bitcoin"],
        gemini_candle_intervals=["1h"],
        exchanges=["gemini", "kraken", "bitstamp"],
        exchange_urls={"kraken": kraken.url, "bitstamp": bitstamp.url},
        exchange_candle_intervals=["1h"],
    )
    client = GeminiClient(settings)
    try:
        sources: list[Source] = [
            GeminiSource(client),
            VenueSource("kraken", config=FAST),
            VenueSource("bitstamp", config=FAST),
        ]
        summary = run_pipeline(settings, sources=sources, engine=engine_for)
        assert summary.status == "success", summary.error
        yield
    finally:
        client.close()
        for double in (kraken, bitstamp):
            stop(double)
        stop_gemini(gemini)
        reset_breakers()


def test_latest_is_the_consolidated_price_with_every_venue_beside_it(
    loaded: None, client: TestClient
) -> None:
    [btc] = client.get("/api/crypto/latest?symbols=BTC").json()["data"]
    venues = {v["source"]: v for v in btc["venues"]}
    assert set(venues) == {"gemini", "kraken", "bitstamp"}
    assert (btc["method"], btc["source"]) == ("weighted_median", "consolidated")
    assert btc["sources_used"] == ["gemini", "kraken"]
    assert (venues["bitstamp"]["used"], venues["bitstamp"]["reason_if_not"]) == (False, "outlier")
    assert venues["bitstamp"]["price"] > PRICES["BTC"] * 1.19
    used = [venues[s]["price"] for s in ("gemini", "kraken")]
    assert min(used) <= btc["price"] <= max(used)
    assert abs(btc["price"] / PRICES["BTC"] - 1) < 0.001  # the 20% venue moved nothing
    # the best quotes across the venues used (they may cross: venues are not one book)
    assert btc["bid"] == max(venues[s]["bid"] for s in ("gemini", "kraken"))
    assert btc["ask"] == min(venues[s]["ask"] for s in ("gemini", "kraken"))
    assert not btc["stale"]

    [alone] = client.get("/api/crypto/latest?symbols=BTC&source=bitstamp").json()["data"]
    assert (alone["method"], alone["source"]) == ("source", "bitstamp")
    assert alone["price"] > PRICES["BTC"] * 1.19  # the venue's own last trade
    assert [v["source"] for v in alone["venues"]] == ["bitstamp"]
    nothing = client.get("/api/crypto/latest?symbols=BTC&source=nowhere").json()["data"]
    assert nothing == []
    assert client.get("/api/crypto/latest?source=Not-A-Source").status_code == 422


def test_symbol_detail_and_metrics_show_the_venues(loaded: None, client: TestClient) -> None:
    detail = client.get("/api/crypto/symbol/bitcoin").json()
    assert {(v["source"], v["used"]) for v in detail["venues"]} == {
        ("gemini", True),
        ("kraken", True),
        ("bitstamp", False),
    }
    exposition = client.get("/metrics").text
    [spread] = [
        line
        for line in exposition.splitlines()
        if line.startswith('venue_spread_ratio{symbol="BTCUSD"}')
    ]
    assert 0 <= float(spread.split()[-1]) < 0.001  # between the venues used
    assert 'venue_used{source="bitstamp",symbol="BTCUSD"} 0.0' in exposition
