"""The venue settings: EXCHANGES, QUOTES, EXCHANGE_URLS, the consolidation knobs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from etl.core.settings import ccxt_venues, get_settings, secret_values


@pytest.fixture(autouse=True)
def _default_venues(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXCHANGES")  # the suite's conftest narrows it to gemini


def test_defaults_poll_four_venues_in_usd_and_gemini_stays_its_own_source() -> None:
    settings = get_settings(_env_file=None)
    assert settings.exchanges == ["gemini", "kraken", "coinbase", "bitstamp"]
    assert settings.quotes == ["USD"]
    assert ccxt_venues(settings) == ["kraken", "coinbase", "bitstamp"]
    assert (settings.consolidate_max_age_seconds, settings.consolidate_mad_k) == (120.0, 5.0)
    assert settings.consolidate_min_sources == 2


def test_lists_and_urls_parse_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCHANGES", " Kraken, bitstamp,kraken ")
    monkeypatch.setenv("QUOTES", "usd, usdt")
    monkeypatch.setenv(
        "EXCHANGE_URLS", "kraken=https://proxy.example/kraken, bitstamp=http://127.0.0.1:8/b"
    )
    settings = get_settings(_env_file=None)
    assert settings.exchanges == ["kraken", "bitstamp"]  # duplicates dropped, order kept
    assert settings.quotes == ["USD", "USDT"]
    assert settings.exchange_urls == {
        "kraken": "https://proxy.example/kraken",
        "bitstamp": "http://127.0.0.1:8/b",
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exchanges": "kraken;bitstamp"}, "not exchange ids"),
        ({"quotes": "US$"}, "currency codes"),
        ({"exchange_urls": "kraken"}, "venue=url"),
        ({"exchange_urls": "kraken=ftp://x"}, "not http"),
        ({"exchange_urls": "binance=https://x"}, "EXCHANGES does not list"),
        ({"exchange_urls": "gemini=https://x"}, "GEMINI_BASE_URL"),
        ({"exchange_candle_intervals": "1h,2h"}, "venue candles"),
        ({"consolidate_min_sources": 0}, "greater than or equal to 1"),
        ({"consolidate_mad_k": 0}, "greater than 0"),
    ],
)
def test_bad_venue_settings_are_refused_at_start_up(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        get_settings(_env_file=None, **overrides)


def test_a_proxy_password_is_masked_in_logs() -> None:
    settings = get_settings(
        _env_file=None, exchange_urls="kraken=https://ops:hunter22@proxy.example/kraken"
    )
    assert "hunter22" in secret_values(settings)
