"""Alias resolution and settings parsing."""

from __future__ import annotations

import pytest

from etl.core.assets import AssetRegistry
from etl.core.errors import UnknownAssetError
from etl.core.settings import get_settings, normalise_database_url


@pytest.mark.parametrize(
    "alias",
    ["bitcoin", "Bitcoin", "BTC", "btc", "BTCUSD", "btcusd", "BTC-USD", "btc/usd", "BTC_USD"],
)
def test_every_alias_resolves_to_the_canonical_pair(alias: str) -> None:
    ref = AssetRegistry().resolve(alias)
    assert ref is not None
    assert (ref.symbol, ref.base, ref.quote, ref.name, ref.coin_id) == (
        "BTCUSD",
        "BTC",
        "USD",
        "Bitcoin",
        "bitcoin",
    )


@pytest.mark.parametrize(
    ("alias", "symbol"),
    [("ETHBTC", "ETHBTC"), ("btcusdt", "BTCUSDT"), ("SOL-USDC", "SOLUSDC"), ("cardano", "ADAUSD")],
)
def test_pairs_split_on_the_longest_known_quote(alias: str, symbol: str) -> None:
    ref = AssetRegistry().resolve(alias)
    assert ref is not None and ref.symbol == symbol


def test_unknown_aliases_do_not_invent_assets() -> None:
    registry = AssetRegistry()
    assert registry.resolve("data", strict=False) is None
    with pytest.raises(UnknownAssetError):
        registry.resolve("nosuchcoin")


def test_a_file_can_introduce_a_coin_we_did_not_seed() -> None:
    registry = AssetRegistry()
    ref = registry.from_content("QNT", "Quant Network")
    assert (ref.symbol, ref.coin_id, ref.name) == ("QNTUSD", "quant-network", "Quant Network")
    found = registry.resolve("quant network")
    assert found is not None and found.symbol == "QNTUSD"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("sqlite:///data/crypto.db", "sqlite:///data/crypto.db"),
    ],
)
def test_database_url_spellings(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_settings_from_the_original_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("POSTGRES_HOST", "db")
    monkeypatch.setenv("POSTGRES_USER", "etl")
    monkeypatch.setenv("POSTGRES_PASSWORD", "s3cr@t/pw")
    monkeypatch.setenv("POSTGRES_DB", "crypto")
    monkeypatch.setenv("COIN_IDS", "bitcoin, ethereum")
    settings = get_settings(_env_file=None)
    assert settings.database_url == "postgresql+psycopg2://etl:s3cr%40t%2Fpw@db:5432/crypto"
    assert settings.coin_ids == ["bitcoin", "ethereum"]


def test_default_database_is_the_local_sqlite_file(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "POSTGRES_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert get_settings(_env_file=None).database_url == "sqlite:///data/crypto.db"
