"""The ccxt venue client: the real ccxt against local Kraken and Bitstamp doubles, through
`EXCHANGE_URLS`; how each fault is classified, retried, and trips the venue's breaker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from etl.core.errors import VenueError
from etl.core.settings import Settings, get_settings
from etl.extract.ccxt_client import VenueClient, apply_url_override
from etl.extract.gemini_client import reset_breakers
from tests.venue_doubles import FAST, BitstampDouble, KrakenDouble, VenueDouble, start, stop


@pytest.fixture
def kraken() -> Iterator[VenueDouble]:
    double = start(KrakenDouble(now_ms=int(time.time() * 1000), slow_seconds=0.6))
    reset_breakers()
    yield double
    stop(double)
    reset_breakers()


@pytest.fixture
def bitstamp() -> Iterator[VenueDouble]:
    double = start(BitstampDouble(now_ms=int(time.time() * 1000), slow_seconds=0.6))
    yield double
    stop(double)


@pytest.fixture
def doubles(kraken: VenueDouble, bitstamp: VenueDouble) -> dict[str, VenueDouble]:
    return {"kraken": kraken, "bitstamp": bitstamp}


def venue_settings(doubles: dict[str, VenueDouble], **extra: object) -> Settings:
    urls = ",".join(f"{venue}={double.url}" for venue, double in doubles.items())
    values: dict[str, object] = {
        "exchanges": ",".join(doubles),
        "exchange_urls": urls,
        "exchange_timeout_seconds": 0.3,
        "exchange_backoff_seconds": 0.01,
        "exchange_retries": 2,
        **extra,
    }
    return get_settings(_env_file=None, **values)


def test_the_override_replaces_the_origin_and_keeps_ccxts_paths() -> None:
    urls = {"public": "https://www.bitstamp.net/api", "nested": {"x": "https://a.b/c?d=1"}}
    assert apply_url_override(urls, "http://127.0.0.1:9/proxy/") == {
        "public": "http://127.0.0.1:9/proxy/api",
        "nested": {"x": "http://127.0.0.1:9/proxy/c?d=1"},
    }


def test_kraken_markets_come_unified_from_assets_and_asset_pairs(
    doubles: dict[str, VenueDouble],
) -> None:
    client = VenueClient("kraken", venue_settings(doubles), config=FAST)
    markets = {m.symbol: m for m in client.markets()}
    assert markets["BTC/USD"].venue_id == "XXBTZUSD"  # XBT is BTC, ZUSD is USD
    assert markets["BTC/USDT"].quote == "USDT"
    assert markets["ADA/USD"].active is False  # cancel_only
    assert [r.path for r in doubles["kraken"].requests] == [
        "/0/public/Assets",
        "/0/public/AssetPairs",
    ]


def test_bitstamp_markets_skip_perpetuals_and_tickers_carry_the_venue_time(
    doubles: dict[str, VenueDouble],
) -> None:
    client = VenueClient("bitstamp", venue_settings(doubles), config=FAST)
    symbols = {m.symbol for m in client.markets()}
    assert "BTC/USD" in symbols and not any(":" in s for s in symbols)
    ticker = client.ticker("BTC/USD")
    assert (ticker.bid, ticker.ask, ticker.last, ticker.base_volume) == (
        67249.0,
        67251.0,
        67250.0,
        1234.5678,
    )
    assert ticker.timestamp == doubles["bitstamp"].now_ms // 1000 * 1000
    bars = client.ohlcv("BTC/USD", "1h", since=None, limit=3)
    assert [b[4] for b in bars] == [67252.0, 67253.0, 67254.0]  # the newest three of five
    assert doubles["bitstamp"].seen("/api/v2/ohlc/btcusd/")[0].query == {
        "step": "3600",
        "limit": "3",
    }


@pytest.mark.parametrize(
    ("venue", "path", "fault", "kind", "attempts"),
    [
        ("kraken", "/0/public/AssetPairs", "429", "rate_limited", 2),
        ("kraken", "/0/public/AssetPairs", "venue-rate-limit", "rate_limited", 2),
        ("kraken", "/0/public/AssetPairs", "503", "unavailable", 2),
        ("kraken", "/0/public/AssetPairs", "venue-unavailable", "unavailable", 2),
        ("kraken", "/0/public/AssetPairs", "502-html", "unavailable", 2),
        ("kraken", "/0/public/AssetPairs", "html200", "malformed", 1),
        ("kraken", "/0/public/AssetPairs", "malformed", "malformed", 1),
        ("kraken", "/0/public/AssetPairs", "timeout", "timeout", 2),
        ("kraken", "/0/public/AssetPairs", "reset", "unavailable", 2),
        ("bitstamp", "/api/v2/markets/", "429", "rate_limited", 2),
        ("bitstamp", "/api/v2/markets/", "500", "unavailable", 2),
        ("bitstamp", "/api/v2/markets/", "venue-unavailable", "unavailable", 2),
        ("bitstamp", "/api/v2/markets/", "html200", "malformed", 1),
        ("bitstamp", "/api/v2/markets/", "malformed", "malformed", 1),
        ("bitstamp", "/api/v2/markets/", "timeout", "timeout", 2),
    ],
)
def test_each_fault_has_its_kind_and_only_transient_ones_are_retried(
    doubles: dict[str, VenueDouble], venue: str, path: str, fault: str, kind: str, attempts: int
) -> None:
    doubles[venue].fail(path, *[fault] * 5)
    client = VenueClient(venue, venue_settings(doubles), config=FAST)
    with pytest.raises(VenueError) as caught:
        client.markets()
    assert (caught.value.venue, caught.value.kind) == (venue, kind)
    assert doubles[venue].count(path) == attempts


def test_a_fault_once_is_retried_through(doubles: dict[str, VenueDouble]) -> None:
    doubles["bitstamp"].fail("/api/v2/ticker/", "503")
    client = VenueClient("bitstamp", venue_settings(doubles), config=FAST)
    assert client.ticker("ETH/USD").last == 3450.0
    assert doubles["bitstamp"].count("/api/v2/ticker/ethusd/") == 2


def test_a_ticker_page_without_prices_is_malformed(doubles: dict[str, VenueDouble]) -> None:
    doubles["bitstamp"].fail("/api/v2/ticker/", "html200")
    client = VenueClient("bitstamp", venue_settings(doubles), config=FAST)
    with pytest.raises(VenueError, match="malformed"):
        client.ticker("BTC/USD")


def test_an_unknown_pair_is_a_bad_request_never_retried_nor_held_against_the_venue(
    doubles: dict[str, VenueDouble],
) -> None:
    client = VenueClient("bitstamp", venue_settings(doubles), config=FAST)
    client.markets()
    client.exchange.markets["BTC/USD"]["id"] = "btcxyz"  # a pair the venue delisted since
    with pytest.raises(VenueError) as caught:
        client.ticker("BTC/USD")
    assert caught.value.kind == "bad_request"  # 404 {"status": "error", "code": "API0003"}
    assert doubles["bitstamp"].count("/api/v2/ticker/") == 1
    assert client.breaker_state == "closed"


def test_krakens_own_error_for_an_unknown_pair_is_not_retried(
    doubles: dict[str, VenueDouble],
) -> None:
    client = VenueClient("kraken", venue_settings(doubles), config=FAST)
    client.markets()
    client.exchange.markets["BTC/USD"]["id"] = "NOPE"
    with pytest.raises(VenueError) as caught:
        client.ticker("BTC/USD")
    assert caught.value.kind == "other"  # a 200 with EQuery:Unknown asset pair
    assert "EQuery:Unknown asset pair" in str(caught.value)
    assert doubles["kraken"].count("/0/public/Ticker") == 1


def test_the_breaker_opens_per_venue_and_then_nothing_is_sent(
    doubles: dict[str, VenueDouble],
) -> None:
    settings = venue_settings(doubles, exchange_breaker_failures=3, exchange_retries=2)
    doubles["kraken"].fail("/0/public/", *["503"] * 10)
    kraken = VenueClient("kraken", settings, config=FAST)
    kinds = []
    for _ in range(3):
        with pytest.raises(VenueError) as caught:
            kraken.markets()
        kinds.append(caught.value.kind)
    # 2 attempts, then 1 more opens the breaker (its retry fails fast), then fast failures
    assert kinds == ["unavailable", "circuit_open", "circuit_open"]
    assert doubles["kraken"].count() == 3 and kraken.breaker_state == "open"
    bitstamp = VenueClient("bitstamp", settings, config=FAST)  # its own breaker
    assert bitstamp.ticker("BTC/USD").last == 67250.0


def test_ccxts_rate_limiter_spaces_the_requests(doubles: dict[str, VenueDouble]) -> None:
    client = VenueClient("bitstamp", venue_settings(doubles), config={"rateLimit": 150})
    client.markets()
    client.ticker("BTC/USD")
    client.ticker("ETH/USD")
    arrivals = [r.at for r in doubles["bitstamp"].requests]
    assert len(arrivals) == 3
    assert all(b - a >= 0.14 for a, b in zip(arrivals, arrivals[1:], strict=False))


def test_an_exchange_ccxt_does_not_know_is_refused() -> None:
    with pytest.raises(VenueError, match="unsupported"):
        VenueClient("nosuchvenue", get_settings(_env_file=None, exchanges="nosuchvenue"))
