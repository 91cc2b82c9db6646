"""The Gemini source in full pipeline runs against the local double, on both databases:
what is stored, what is quarantined, and how failures show in the run and its ledger."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from etl.core.settings import Settings
from etl.extract.gemini_client import GeminiClient, reset_breakers
from etl.pipeline import RunSummary, begin_run, run_pipeline
from etl.sources.csv_files import CsvSource
from etl.sources.gemini import GeminiSource
from tests import series_oracle
from tests.databases import REAL
from tests.etl.read.rollup_checks import every_rollup_as_resampled
from tests.gemini_double import GeminiDouble, start, stop
from tests.helpers import rows, scalar

DAY_MS = 86_400_000


@pytest.fixture
def double() -> Iterator[GeminiDouble]:
    fake = start(GeminiDouble(now_ms=int(time.time() * 1000), slow_seconds=0.4))
    reset_breakers()
    yield fake
    stop(fake)
    reset_breakers()


@pytest.fixture
def live_settings(settings: Settings, double: GeminiDouble) -> Settings:
    return settings.model_copy(
        update={
            "gemini_base_url": double.url,
            "gemini_read_timeout": 0.2,
            "gemini_backoff_seconds": 0.01,
            "gemini_backoff_max_seconds": 0.02,
            "gemini_requests_per_minute": 120,
            "gemini_burst": 10,
            "coin_ids": ["bitcoin", "ethereum", "solana", "cardano"],
            "gemini_candle_intervals": ["1h", "1d"],
        }
    )


def run_live(settings: Settings, engine: Engine, *extra: CsvSource) -> RunSummary:
    client = GeminiClient(settings)
    try:
        return run_pipeline(settings, sources=[*extra, GeminiSource(client)], engine=engine)
    finally:
        client.close()


def test_tickers_and_candles_are_stored_and_cardano_is_skipped(
    live_settings: Settings, engine: Engine
) -> None:
    summary = run_live(live_settings, engine)
    gemini = summary.sources["gemini"]
    assert summary.status == "success" and gemini["status"] == "success"
    assert {"coin": "cardano", "status": "skipped", "reason": "Gemini lists no ADA pair"} in (
        gemini["details"]
    )
    assert gemini["inserted"] == 3 + 3 * 2 * 5  # 3 tickers; 3 pairs x 2 intervals x 5 bars
    tickers = rows(
        engine,
        "SELECT a.symbol, t.bid, t.ask, t.last, t.volume_base_24h, t.volume_quote_24h "
        "FROM ticker t JOIN asset a ON a.id = t.asset_id ORDER BY a.symbol",
    )
    assert tickers[0] == ("BTCUSD", 67250.49, 67250.51, 67250.5, 1615.46861748, 14727307.57545006)
    assert [t[0] for t in tickers] == ["BTCUSD", "ETHUSD", "SOLUSD"]
    series = rows(
        engine,
        "SELECT c.interval, count(*), max(c.close) FROM candle c WHERE c.source = 'gemini' "
        "GROUP BY c.interval ORDER BY c.interval",
    )
    assert [(s[0], s[1]) for s in series] == [("1d", 15), ("1h", 15)]
    daily_opens = rows(engine, "SELECT open_time FROM candle WHERE interval = '1d'")
    assert all((t - 4 * 3_600_000) % DAY_MS == 0 for (t,) in daily_opens)  # 04:00 UTC bars
    spread = scalar(
        engine,
        "SELECT m.spread FROM metric m JOIN asset a ON a.id = m.asset_id "
        "WHERE a.symbol = 'BTCUSD' AND m.interval = '1h'",
    )
    assert spread == pytest.approx(0.02)
    assert scalar(engine, "SELECT count(*) FROM quality_report WHERE source = 'gemini'") == 6


def test_rerun_resumes_from_the_newest_stored_bar(
    live_settings: Settings, engine: Engine, double: GeminiDouble
) -> None:
    double.now_ms -= 2 * DAY_MS
    run_live(live_settings, engine)
    double.now_ms += 2 * DAY_MS  # two days later: the 1d window moved by two bars
    again = run_live(live_settings.model_copy(update={"gemini_candle_intervals": ["1d"]}), engine)
    details = {d.get("symbol"): d for d in again.sources["gemini"]["details"]}
    # from the stored newest bar on: it grew (updated), plus two new bars; older ones untouched
    assert details["btcusd"]["candles_1d"] == {
        "read": 3,
        "inserted": 2,
        "updated": 1,
        "unchanged": 0,
        "rejected": 0,
    }
    assert scalar(engine, "SELECT count(*) FROM candle WHERE interval = '1d'") == 3 * 7
    assert scalar(engine, "SELECT count(*) FROM ticker") == 6  # a snapshot per run and pair
    assert series_oracle.assert_stored_equals_full_scan(engine, "gemini") == 6

    assert every_rollup_as_resampled(engine) > 0  # the grown bar's buckets recomputed


def test_gemini_down_leaves_the_run_partial_and_the_history_intact(
    live_settings: Settings, engine: Engine, double: GeminiDouble
) -> None:
    double.fail("/", *["503"] * 50)
    summary = run_live(live_settings, engine, CsvSource([REAL / "coin_Solana.csv"]))
    assert summary.status == "partial"
    gemini = summary.sources["gemini"]
    assert gemini["status"] == "failed"
    calls = next(d for d in gemini["details"] if d["status"] == "calls")
    assert calls["failures"] == {"server_error": 1}
    assert "503" in calls["last_error"]
    assert double.count("/v1/symbols") == live_settings.gemini_retries
    assert scalar(engine, "SELECT count(*) FROM candle") == 452  # the CSV, whole
    assert scalar(engine, "SELECT count(*) FROM candle WHERE source = 'gemini'") == 0
    ledger = rows(engine, "SELECT status, sources, error FROM etl_run")
    status, sources, error = ledger[0]
    sources = json.loads(sources) if isinstance(sources, str) else sources
    assert status == "partial" and "503" in error
    assert sources["gemini"]["status"] == "failed"


def test_breaker_opens_mid_run_and_the_rest_fails_fast(
    live_settings: Settings, engine: Engine, double: GeminiDouble
) -> None:
    double.fail("/v2/candles", *["503"] * 100)
    summary = run_live(live_settings, engine)
    gemini = summary.sources["gemini"]
    assert summary.status == "partial" and gemini["status"] == "partial"
    calls = next(d for d in gemini["details"] if d["status"] == "calls")
    # BTC 1h: 3 failed attempts; BTC 1d: 2 more open the breaker (5), its third attempt
    # fails fast; then every later call (ETH, SOL tickers and candles) fails fast too
    assert calls["failures"] == {"server_error": 1, "circuit_open": 1 + 6}
    assert calls["breaker"] == "open"
    assert double.count("/v2/candles") == 5
    assert double.count("/v1/pubticker") == 1
    assert scalar(engine, "SELECT count(*) FROM ticker") == 1
    assert scalar(engine, "SELECT count(*) FROM candle") == 0


def test_garbage_rows_are_quarantined_and_the_rest_loads(
    live_settings: Settings, engine: Engine, double: GeminiDouble
) -> None:
    now = double.now_ms
    double.overrides["/v1/pubticker/btcusd"] = {
        "bid": "101.5",
        "ask": "100.0",
        "last": "100.7",
        "volume": {"BTC": "1", "USD": "100"},
    }
    newest = (now - 4 * 3_600_000) // DAY_MS * DAY_MS + 4 * 3_600_000
    double.overrides["/v2/candles/ethusd/1day"] = [
        [newest, 10.0, 12.0, 9.0, 11.0, 5.0],
        [newest - DAY_MS, 10.0, 9.0, 11.0, 10.5, 5.0],  # high < low
        [newest - 2 * DAY_MS, 10.0, 12.0, 9.0, 11.0, 5.0],
    ]
    summary = run_live(live_settings, engine)
    assert summary.sources["gemini"]["rejected"] == 2
    quarantined = rows(engine, "SELECT file, line, raw, reason FROM rejected_row ORDER BY file")
    assert quarantined[0][0] == "/v1/pubticker/btcusd"
    assert quarantined[0][3] == "inverted_bid_ask: bid 101.5 > ask 100.0"
    assert json.loads(quarantined[0][2])["bid"] == "101.5"
    assert quarantined[1][:2] == ("/v2/candles/ethusd/1d", 2)
    assert quarantined[1][3].startswith("high_below_open_close")
    assert json.loads(quarantined[1][2]) == [newest - DAY_MS, 10.0, 9.0, 11.0, 10.5, 5.0]
    eth_daily = scalar(
        engine,
        "SELECT count(*) FROM candle c JOIN asset a ON a.id = c.asset_id "
        "WHERE a.symbol = 'ETHUSD' AND c.interval = '1d'",
    )
    assert eth_daily == 2
    assert scalar(engine, "SELECT count(*) FROM ticker") == 2  # ETH and SOL; BTC quarantined


def test_malformed_candles_fail_that_call_only(
    live_settings: Settings, engine: Engine, double: GeminiDouble
) -> None:
    double.fail("/v2/candles/solusd/1hr", "malformed")
    double.fail("/v2/candles/btcusd/1day", "wrong-types")
    summary = run_live(live_settings, engine)
    gemini = summary.sources["gemini"]
    assert gemini["status"] == "partial"
    calls = next(d for d in gemini["details"] if d["status"] == "calls")
    assert calls["failures"] == {"malformed": 2}
    assert scalar(engine, "SELECT count(*) FROM candle") == (3 * 2 - 2) * 5


def test_a_retried_gemini_step_writes_each_ticker_once(
    live_settings: Settings, engine: Engine
) -> None:
    # Prefect retries `load-gemini` with the same run context (run id and clock)
    ctx = begin_run(live_settings, engine, trigger="test", run_id=str(uuid.uuid4()))
    client = GeminiClient(live_settings.model_copy(update={"gemini_ticker_ttl_seconds": 0}))
    try:
        first = GeminiSource(client).run(ctx)
        again = GeminiSource(client).run(ctx)
    finally:
        client.close()
    assert first.inserted == 3 + 3 * 2 * 5 and first.status == "success"
    assert again.status == "success" and again.inserted == 0
    assert again.unchanged >= 3  # the three tickers, found already stored
    counted = rows(
        engine,
        "SELECT a.symbol, count(*) FROM ticker t JOIN asset a ON a.id = t.asset_id "
        "GROUP BY a.symbol ORDER BY a.symbol",
    )
    assert counted == [("BTCUSD", 1), ("ETHUSD", 1), ("SOLUSD", 1)]
