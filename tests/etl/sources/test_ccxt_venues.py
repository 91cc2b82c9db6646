"""The ccxt venue sources in full pipeline runs against the Kraken and Bitstamp doubles, on
both databases: what is stored under which source, USD kept apart from USDT/USDC, a venue
failing alone, and a re-run changing nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from etl.core.settings import Settings, get_settings
from etl.pipeline import RunSummary, live_sources, run_pipeline
from etl.sources.ccxt_venues import VenueSource
from tests import series_oracle
from tests.etl.read.rollup_checks import every_rollup_as_resampled
from tests.helpers import rows, scalar
from tests.venue_doubles import (
    FAST,
    VenueDouble,
)


@pytest.fixture
def venue_settings(settings: Settings, doubles: dict[str, VenueDouble]) -> Settings:
    return settings.model_copy(
        update={
            "exchanges": ["kraken", "bitstamp"],
            "exchange_urls": {venue: double.url for venue, double in doubles.items()},
            "exchange_timeout_seconds": 0.3,
            "exchange_backoff_seconds": 0.01,
            "exchange_retries": 2,
            "coin_ids": ["bitcoin", "ethereum", "solana", "cardano"],
            "exchange_candle_intervals": ["1h", "1d"],
        }
    )


def run_venues(settings: Settings, engine: Engine) -> RunSummary:
    sources = [VenueSource(venue, config=FAST) for venue in ("kraken", "bitstamp")]
    return run_pipeline(settings, sources=sources, engine=engine)


def calls_of(summary: RunSummary, venue: str) -> dict[str, object]:
    return next(d for d in summary.sources[venue]["details"] if d["status"] == "calls")


def test_each_venue_stores_its_tickers_and_bars_under_its_own_name(
    venue_settings: Settings, engine: Engine
) -> None:
    summary = run_venues(venue_settings, engine)
    assert summary.status == "success"
    kraken, bitstamp = summary.sources["kraken"], summary.sources["bitstamp"]
    assert {
        "coin": "cardano",
        "status": "skipped",
        "reason": ("kraken lists no active ADA spot pair in USD"),
    } in kraken["details"]
    assert {
        "coin": "solana",
        "status": "skipped",
        "reason": ("bitstamp lists no active SOL spot pair in USD"),
    } in bitstamp["details"]
    assert kraken["inserted"] == bitstamp["inserted"] == 3 + 3 * 2 * 5
    tickers = rows(
        engine,
        "SELECT t.source, a.symbol, t.bid, t.ask, t.last, t.volume_base_24h "
        "FROM ticker t JOIN asset a ON a.id = t.asset_id ORDER BY t.source, a.symbol",
    )
    assert [t[:2] for t in tickers] == [
        ("bitstamp", "ADAUSD"),
        ("bitstamp", "BTCUSD"),
        ("bitstamp", "ETHUSD"),
        ("kraken", "BTCUSD"),
        ("kraken", "ETHUSD"),
        ("kraken", "SOLUSD"),
    ]
    assert tickers[3][2:] == (67249.9, 67250.1, 67250.0, 2500.25)  # XBT read as BTC
    series = rows(
        engine,
        "SELECT c.source, c.interval, count(*) FROM candle c "
        "GROUP BY c.source, c.interval ORDER BY c.source, c.interval",
    )
    assert series == [
        ("bitstamp", "1d", 15),
        ("bitstamp", "1h", 15),
        ("kraken", "1d", 15),
        ("kraken", "1h", 15),
    ]
    assert scalar(engine, "SELECT count(*) FROM asset WHERE quote <> 'USD'") == 0
    assert scalar(engine, "SELECT count(*) FROM quality_report") == 12


def test_usdt_and_usdc_pairs_are_their_own_assets_when_listed_in_quotes(
    venue_settings: Settings, engine: Engine
) -> None:
    settings = venue_settings.model_copy(
        update={"quotes": ["USD", "USDT", "USDC"], "coin_ids": ["bitcoin"]}
    )
    run_venues(settings, engine)
    stored = rows(
        engine,
        "SELECT DISTINCT t.source, a.symbol, a.quote FROM ticker t "
        "JOIN asset a ON a.id = t.asset_id ORDER BY t.source, a.symbol",
    )
    assert stored == [
        ("bitstamp", "BTCUSD", "USD"),
        ("bitstamp", "BTCUSDC", "USDC"),
        ("kraken", "BTCUSD", "USD"),
        ("kraken", "BTCUSDT", "USDT"),
    ]


def test_a_venue_down_leaves_the_run_partial_and_the_other_venue_loaded(
    venue_settings: Settings, engine: Engine, doubles: dict[str, VenueDouble]
) -> None:
    doubles["kraken"].fail("/", *["503"] * 50)
    summary = run_venues(venue_settings, engine)
    assert summary.status == "partial"
    assert summary.sources["kraken"]["status"] == "failed"
    assert summary.sources["bitstamp"]["status"] == "success"
    calls = calls_of(summary, "kraken")
    assert calls["failures"] == {"unavailable": 1} and calls["calls"] == 1
    assert "503" in str(calls["last_error"])
    assert scalar(engine, "SELECT count(*) FROM candle WHERE source = 'kraken'") == 0
    assert scalar(engine, "SELECT count(*) FROM candle WHERE source = 'bitstamp'") == 30
    status, sources, error = rows(engine, "SELECT status, sources, error FROM etl_run")[0]
    sources = json.loads(sources) if isinstance(sources, str) else sources
    assert status == "partial" and "kraken unavailable" in error
    assert sources["kraken"]["details"][-1]["failures"] == {"unavailable": 1}


def test_failures_mid_venue_are_counted_by_kind_and_the_rest_loads(
    venue_settings: Settings, engine: Engine, doubles: dict[str, VenueDouble]
) -> None:
    doubles["bitstamp"].fail("/api/v2/ticker/ethusd/", "429", "429")
    doubles["bitstamp"].fail("/api/v2/ohlc/adausd/", "html200")
    summary = run_venues(venue_settings, engine)
    bitstamp = summary.sources["bitstamp"]
    assert summary.status == "partial" and bitstamp["status"] == "partial"
    assert calls_of(summary, "bitstamp")["failures"] == {"rate_limited": 1, "malformed": 1}
    eth = next(d for d in bitstamp["details"] if d.get("symbol") == "ETH/USD")
    assert eth["ticker"] == "failed: rate_limited" and eth["status"] == "failed"
    assert eth["candles_1h"]["inserted"] == 5
    assert scalar(engine, "SELECT count(*) FROM ticker WHERE source = 'bitstamp'") == 2


def test_a_rerun_resumes_from_the_newest_bar_and_changes_nothing(
    venue_settings: Settings, engine: Engine, doubles: dict[str, VenueDouble]
) -> None:
    run_venues(venue_settings, engine)
    again = run_venues(venue_settings, engine)
    assert again.status == "success"
    btc = next(d for d in again.sources["bitstamp"]["details"] if d.get("symbol") == "BTC/USD")
    # only the newest stored bar is asked for and read again: unchanged
    assert btc["candles_1h"] == {
        "read": 1,
        "inserted": 0,
        "updated": 0,
        "unchanged": 1,
        "rejected": 0,
    }
    assert btc["ticker"]["status"] == "unchanged"  # Bitstamp's own timestamp: same snapshot
    assert scalar(engine, "SELECT count(*) FROM candle") == 60
    assert series_oracle.assert_stored_equals_full_scan(engine) >= 4

    assert every_rollup_as_resampled(engine) > 0
    assert "since" in doubles["kraken"].seen("/0/public/OHLC")[-1].query
    assert "start" in doubles["bitstamp"].seen("/api/v2/ohlc/")[-1].query


def test_exchanges_choose_the_live_sources_and_gemini_is_fetched_once() -> None:
    names = [s.name for s in live_sources(get_settings(_env_file=None, exchanges="gemini,kraken"))]
    assert names == ["gemini", "kraken"]
    defaults = get_settings(_env_file=None, exchanges="gemini,kraken,coinbase,bitstamp")
    assert [s.name for s in live_sources(defaults)] == [
        "gemini",
        "kraken",
        "coinbase",
        "bitstamp",
    ]
    assert [s.name for s in live_sources(get_settings(_env_file=None, exchanges="bitstamp"))] == [
        "bitstamp"
    ]


def test_an_unknown_exchange_fails_alone(venue_settings: Settings, engine: Engine) -> None:
    settings = venue_settings.model_copy(update={"exchanges": ["kraken", "nosuchvenue"]})
    summary = run_pipeline(
        settings,
        sources=[VenueSource("kraken", config=FAST), VenueSource("nosuchvenue")],
        engine=engine,
    )
    assert summary.status == "partial"
    assert summary.sources["nosuchvenue"]["status"] == "failed"
    assert summary.sources["kraken"]["status"] == "success"
