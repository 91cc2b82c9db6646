"""The real Gemini client against the local double: formats, retries, breaker, cache, pacer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from etl.core.errors import GeminiError
from etl.core.settings import Settings, get_settings
from etl.extract.gemini_client import GeminiClient, gemini_symbols, reset_breakers
from etl.extract.gemini_models import GeminiSymbol
from tests.gemini_double import GeminiDouble, start, stop

NOW_MS = 1_764_460_800_000  # 2025-11-30T00:00Z


@pytest.fixture
def double() -> Iterator[GeminiDouble]:
    fake = start(GeminiDouble(now_ms=NOW_MS, slow_seconds=0.6))
    reset_breakers()
    yield fake
    stop(fake)
    reset_breakers()


def client_settings(double: GeminiDouble, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "gemini_base_url": double.url,
        "gemini_read_timeout": 0.3,
        "gemini_connect_timeout": 0.5,
        "gemini_backoff_seconds": 0.01,
        "gemini_backoff_max_seconds": 0.05,
        "gemini_requests_per_minute": 120,
        "gemini_burst": 10,
        "_env_file": None,
    }
    values.update(overrides)
    return get_settings(**values)


@pytest.fixture
def client(double: GeminiDouble) -> Iterator[GeminiClient]:
    gemini = GeminiClient(client_settings(double))
    yield gemini
    gemini.close()


def test_symbols_are_split_into_base_quote_and_perpetuals(client: GeminiClient) -> None:
    parsed = {s.symbol: (s.base, s.quote, s.perpetual) for s in client.symbols()}
    assert parsed["btcusd"] == ("BTC", "USD", False)
    assert parsed["btcgusd"] == ("BTC", "GUSD", False)
    assert parsed["btcgusdperp"] == ("BTC", "GUSD", True)
    assert parsed["btcrlusd"] == ("BTC", "RLUSD", False)
    assert parsed["usdtusd"] == ("USDT", "USD", False)
    assert parsed["gusdusd"] == ("GUSD", "USD", False)
    assert parsed["ethbtc"] == ("ETH", "BTC", False)
    assert GeminiSymbol.parse("ethusdc").quote == "USDC"


def test_ticker_prices_keep_their_exact_decimal_value(client: GeminiClient) -> None:
    ticker = client.pubticker("btcusd")
    assert ticker.bid == Decimal("67250.49") and ticker.ask == Decimal("67250.51")
    assert ticker.volume_in("USD") == Decimal("14727307.57545006088")
    assert ticker.volume_timestamp_ms == NOW_MS
    v2 = client.ticker_v2("btcusd")
    assert v2.high == Decimal("68595.51") and len(v2.changes) == 24
    feed = client.pricefeed()
    assert feed[0].pair == "BTCUSD" and feed[0].change_24h == Decimal("-0.0920")
    assert client.symbol_details("btcusd").quote_increment == Decimal("0.01")


def test_candles_map_interval_names_and_come_back_oldest_first(
    client: GeminiClient, double: GeminiDouble
) -> None:
    rows = client.candles("btcusd", "1d")
    assert [r.time_ms for r in rows] == sorted(r.time_ms for r in rows)
    assert len(rows) == 5
    assert (rows[-1].time_ms - 4 * 3_600_000) % 86_400_000 == 0  # opens at 04:00 UTC
    client.candles("btcusd", "1h")
    assert [r.path for r in double.requests] == [
        "/v2/candles/btcusd/1day",
        "/v2/candles/btcusd/1hr",
    ]


def test_bad_symbol_is_final_and_not_retried(client: GeminiClient, double: GeminiDouble) -> None:
    with pytest.raises(GeminiError) as error:
        client.pubticker("adausd")
    assert error.value.kind == "bad_request" and error.value.status == 400
    assert "InvalidSymbol" in str(error.value)
    assert double.count("/v1/pubticker") == 1


def test_rate_limit_and_server_errors_are_retried_then_succeed(
    client: GeminiClient, double: GeminiDouble
) -> None:
    double.fail("/v1/pubticker", "429", "502-html")
    assert client.pubticker("ethusd").last == Decimal("3450.25")
    assert [r.status for r in double.requests] == [429, 502, 200]


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("503", "server_error"),
        ("timeout", "timeout"),
        ("reset", "connection"),
        ("truncated", "connection"),
        ("500", "server_error"),
    ],
)
def test_persistent_transient_faults_use_every_attempt(
    client: GeminiClient, double: GeminiDouble, fault: str, kind: str
) -> None:
    double.fail("/v1/pubticker", fault, fault, fault)
    with pytest.raises(GeminiError) as error:
        client.pubticker("btcusd")
    assert error.value.kind == kind
    assert double.count("/v1/pubticker") == 3  # GEMINI_RETRIES attempts, no more


@pytest.mark.parametrize("fault", ["malformed", "wrong-types"])
def test_garbage_bodies_are_not_retried(
    client: GeminiClient, double: GeminiDouble, fault: str
) -> None:
    double.fail("/v1/pubticker", fault)
    with pytest.raises(GeminiError) as error:
        client.pubticker("btcusd")
    assert error.value.kind == "malformed"
    assert double.count("/v1/pubticker") == 1


def test_empty_candle_window_is_no_data_not_an_error(
    client: GeminiClient, double: GeminiDouble
) -> None:
    double.fail("/v2/candles", "empty")
    assert client.candles("btcusd", "1d") == []


def test_breaker_opens_after_repeated_failures_and_stops_calling(double: GeminiDouble) -> None:
    settings = client_settings(double, gemini_breaker_failures=4, gemini_retries=3)
    client = GeminiClient(settings)
    double.fail("/v1/pubticker", *["503"] * 10)
    for _ in range(2):
        with pytest.raises(GeminiError):
            client.pubticker("btcusd")
    assert client.breaker_state == "open"
    assert double.count() == 4  # the 4th failed attempt opened it; nothing after
    with pytest.raises(GeminiError) as error:
        client.candles("ethusd", "1d")
    assert error.value.kind == "circuit_open"
    assert double.count() == 4
    client.close()


def test_breaker_ignores_our_own_bad_requests(double: GeminiDouble) -> None:
    client = GeminiClient(client_settings(double, gemini_breaker_failures=2))
    for _ in range(3):
        with pytest.raises(GeminiError):
            client.pubticker("nosuchusd")
    assert client.breaker_state == "closed"
    client.close()


def test_slow_changing_answers_are_cached(double: GeminiDouble) -> None:
    now = [1000.0]
    client = GeminiClient(
        client_settings(double, gemini_ticker_ttl_seconds=5), clock=lambda: now[0]
    )
    client.symbols()
    client.symbols()
    assert double.count("/v1/symbols") == 1
    client.pubticker("btcusd")
    now[0] += 4.9  # still fresh
    client.pubticker("btcusd")
    assert double.count("/v1/pubticker") == 1
    now[0] += 0.2  # past the ticker TTL, not the symbols' one
    client.pubticker("btcusd")
    client.symbols()
    assert double.count("/v1/pubticker") == 2
    assert double.count("/v1/symbols") == 1
    client.close()


def test_pacer_keeps_concurrent_requests_under_the_rate(double: GeminiDouble) -> None:
    client = GeminiClient(
        client_settings(
            double, gemini_requests_per_minute=120, gemini_burst=2, gemini_ticker_ttl_seconds=0
        )
    )
    symbols = ["btcusd", "ethusd", "solusd", "ltcusd", "dogeusd", "btcusdt", "ethbtc", "solbtc"]
    threads = [threading.Thread(target=client.pubticker, args=(s,)) for s in symbols]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times = sorted(r.at for r in double.requests)
    assert len(times) == 8
    # burst 2 at 120/minute: never 3 requests within one second
    assert min(b - a for a, b in zip(times, times[2:], strict=False)) >= 0.95
    client.close()


def test_symbol_list_for_the_api_falls_back_to_the_last_good_answer(double: GeminiDouble) -> None:
    client = GeminiClient(client_settings(double, gemini_symbols_ttl_seconds=0))
    double.fail("/v1/symbols", *["503"] * 3)
    with pytest.raises(GeminiError):
        gemini_symbols(client)  # nothing fetched yet: the API answers 503
    fresh = gemini_symbols(client)
    assert not fresh.stale and "btcgusdperp" in {s.symbol for s in fresh.symbols}
    double.fail("/v1/symbols", *["503"] * 3)
    stale = gemini_symbols(client)
    assert stale.stale and stale.symbols == fresh.symbols
    assert stale.fetched_at == fresh.fetched_at
    client.close()


def test_a_flood_over_the_body_cap_is_malformed_and_never_read_whole(
    client: GeminiClient, double: GeminiDouble
) -> None:
    double.fail("/v1/symbols", "flood")
    with pytest.raises(GeminiError) as error:
        client.symbols()
    assert error.value.kind == "malformed" and "over 5242880 bytes" in str(error.value)
    assert double.count("/v1/symbols") == 1  # garbage is not retried
    time.sleep(0.2)  # let the server notice the hang-up
    # 40 MiB were on offer; the client stopped near its 5 MiB cap (plus socket buffers)
    assert double.requests[0].sent < 20 * 1024 * 1024


def test_a_declared_length_over_the_cap_is_refused_before_reading(
    client: GeminiClient, double: GeminiDouble
) -> None:
    double.fail("/v1/pubticker", "huge")
    with pytest.raises(GeminiError) as error:
        client.pubticker("btcusd")
    assert error.value.kind == "malformed" and "6291456 bytes" in str(error.value)
    assert double.count("/v1/pubticker") == 1


def test_deeply_nested_json_is_malformed_not_a_crash(
    client: GeminiClient, double: GeminiDouble
) -> None:
    double.fail("/v1/pubticker", "nested")
    with pytest.raises(GeminiError) as error:
        client.pubticker("btcusd")
    assert error.value.kind == "malformed" and "nested too deeply" in str(error.value)
    assert double.count("/v1/pubticker") == 1


def test_a_slow_drip_server_cannot_hold_a_call_past_its_deadline(double: GeminiDouble) -> None:
    # a byte every 50 ms never trips the 0.3 s read timeout; only the deadline ends it
    client = GeminiClient(client_settings(double, gemini_call_deadline_seconds=1.0))
    double.fail("/v1/pubticker", "drip", "drip", "drip")
    started = time.monotonic()
    with pytest.raises(GeminiError) as error:
        client.pubticker("btcusd")
    elapsed = time.monotonic() - started
    assert error.value.kind == "timeout" and "deadline" in str(error.value)
    assert elapsed < 3.0, elapsed  # the drip alone would take 5 s per attempt
    client.close()


def test_clients_with_other_breaker_settings_get_their_own_breaker(double: GeminiDouble) -> None:
    patient = GeminiClient(client_settings(double, gemini_breaker_failures=5))
    strict = GeminiClient(client_settings(double, gemini_breaker_failures=1, gemini_retries=1))
    twin = GeminiClient(client_settings(double, gemini_breaker_failures=5))
    assert strict.breaker.fail_max == 1 and patient.breaker.fail_max == 5
    assert twin.breaker is patient.breaker  # same host, same settings: one shared state
    double.fail("/v1/pubticker", "503")
    with pytest.raises(GeminiError):
        strict.pubticker("btcusd")
    assert strict.breaker_state == "open"  # its own fail_max of 1, not the first client's 5
    assert patient.pubticker("btcusd").last == Decimal("67250.50")
    for gemini in (patient, strict, twin):
        gemini.close()


def test_a_busy_pacer_serves_the_last_symbols_instead_of_waiting(double: GeminiDouble) -> None:
    client = GeminiClient(
        client_settings(
            double, gemini_requests_per_minute=2, gemini_burst=1, gemini_symbols_ttl_seconds=0
        )
    )
    fresh = gemini_symbols(client)
    started = time.monotonic()
    again = gemini_symbols(client, pacer_wait=0.2)  # the next slot is 30 s away
    assert time.monotonic() - started < 1.5  # not the 30 s to the next slot
    assert again.stale and again.symbols == fresh.symbols
    assert double.count("/v1/symbols") == 1
    client.close()
