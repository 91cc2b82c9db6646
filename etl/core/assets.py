"""Canonical assets and alias resolution.

An asset is a trading pair with a canonical id `BASEQUOTE` (e.g. `BTCUSD`). Every spelling a
user may type resolves to it case-insensitively: the coin id (`bitcoin`), the coin name
(`Bitcoin`), the base (`BTC`, meaning the USD pair), and the pair written with or without a
separator (`BTCUSD`, `btcusd`, `BTC-USD`, `BTC/USD`, `BTC_USD`).

`KNOWN_COINS` seeds the names of common coins; a file that names a coin we do not know (a
Kaggle `coin_Tron.csv` carries `Symbol=TRX, Name=Tron`) creates the asset from its content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from etl.core.errors import AssetTextError, UnknownAssetError

DEFAULT_QUOTE = "USD"
# Longest first, so BTCUSDT is BTC/USDT rather than BTCUSD + T (and BTCFDUSD not BTCFD/USD).
KNOWN_QUOTES = tuple(
    sorted(
        (
            *("RLUSD", "FDUSD", "USDT", "USDC", "GUSD", "BUSD", "TUSD", "USDP", "DAI", "USD"),
            *("EUR", "GBP", "SGD", "CAD", "JPY", "CHF", "AUD", "TRY", "BRL", "BTC", "ETH"),
        ),
        key=len,
        reverse=True,
    )
)
_SEPARATORS = re.compile(r"[\s/_\-:.]+")
_SYMBOL_TEXT = re.compile(r"^[A-Za-z0-9]{1,16}$")
NAME_MAX_CHARS = 64  # `asset.name` and `asset.coin_id` are String(64)
FORMULA_PREFIXES = "=+-@"


@dataclass(frozen=True)
class Coin:
    base: str
    name: str
    coin_id: str


@dataclass(frozen=True)
class AssetRef:
    """A resolved pair; `symbol` is the canonical id stored in `asset.symbol`."""

    base: str
    quote: str
    name: str
    coin_id: str

    @property
    def symbol(self) -> str:
        return f"{self.base}{self.quote}"


KNOWN_COINS: tuple[Coin, ...] = (
    Coin("BTC", "Bitcoin", "bitcoin"),
    Coin("ETH", "Ethereum", "ethereum"),
    Coin("SOL", "Solana", "solana"),
    Coin("ADA", "Cardano", "cardano"),
    Coin("XRP", "XRP", "ripple"),
    Coin("LTC", "Litecoin", "litecoin"),
    Coin("BCH", "Bitcoin Cash", "bitcoin-cash"),
    Coin("DOGE", "Dogecoin", "dogecoin"),
    Coin("DOT", "Polkadot", "polkadot"),
    Coin("LINK", "Chainlink", "chainlink"),
    Coin("AVAX", "Avalanche", "avalanche-2"),
    Coin("MATIC", "Polygon", "matic-network"),
    Coin("UNI", "Uniswap", "uniswap"),
    Coin("AAVE", "Aave", "aave"),
    Coin("ATOM", "Cosmos", "cosmos"),
    Coin("XLM", "Stellar", "stellar"),
    Coin("XMR", "Monero", "monero"),
    Coin("EOS", "EOS", "eos"),
    Coin("TRX", "TRON", "tron"),
    Coin("BNB", "Binance Coin", "binancecoin"),
    Coin("USDT", "Tether", "tether"),
    Coin("USDC", "USD Coin", "usd-coin"),
    Coin("WBTC", "Wrapped Bitcoin", "wrapped-bitcoin"),
    Coin("ZEC", "Zcash", "zcash"),
    Coin("FIL", "Filecoin", "filecoin"),
    Coin("SHIB", "Shiba Inu", "shiba-inu"),
    Coin("PEPE", "Pepe", "pepe"),
    Coin("XTZ", "Tezos", "tezos"),
    Coin("MIOTA", "IOTA", "iota"),
    Coin("XEM", "NEM", "nem"),
    Coin("CRO", "Crypto.com Coin", "crypto-com-chain"),
)


def check_display_text(text: str, field: str, limit: int = NAME_MAX_CHARS) -> None:
    """Text a client will see: it fits the column, is printable, and cannot run as a
    spreadsheet formula when a client exports it (CSV injection)."""
    if not text:
        raise AssetTextError(f"bad_{field}: empty")
    if len(text) > limit:
        raise AssetTextError(f"bad_{field}: longer than {limit} characters")
    if not text.isprintable():
        raise AssetTextError(f"bad_{field}: unprintable characters")
    if text[0] in FORMULA_PREFIXES:
        raise AssetTextError(f"bad_{field}: starts with {text[0]!r} (a spreadsheet formula)")


def _squash(text: str) -> str:
    return _SEPARATORS.sub("", text).upper()


def split_pair(text: str) -> tuple[str, str] | None:
    """(base, quote) when `text` ends in a known quote (`BTCUSDT`, `eth/btc`), else None."""
    return AssetRegistry._split_pair(text)


class AssetRegistry:
    """Resolves aliases to assets. Extend it with assets read from the database."""

    def __init__(self, coins: tuple[Coin, ...] = KNOWN_COINS) -> None:
        self._by_base: dict[str, Coin] = {}
        self._by_alias: dict[str, Coin] = {}
        for coin in coins:
            self.add_coin(coin)

    def add_coin(self, coin: Coin) -> None:
        self._by_base.setdefault(coin.base, coin)
        for alias in (coin.base, coin.coin_id, coin.name):
            self._by_alias.setdefault(_squash(alias), coin)

    def resolve(self, text: str, *, strict: bool = True) -> AssetRef | None:
        """Resolve an alias; `strict=False` returns None instead of raising.

        Only known coins resolve: a file name token like `data` never invents an asset.
        """
        squashed = _squash(text)
        coin = self._by_alias.get(squashed)
        if coin is not None:
            return AssetRef(coin.base, DEFAULT_QUOTE, coin.name, coin.coin_id)
        pair = self._split_pair(text)
        if pair is not None:
            base, quote = pair
            coin = self._by_alias.get(base)
            if coin is not None:
                return AssetRef(coin.base, quote, coin.name, coin.coin_id)
        if strict:
            raise UnknownAssetError(text)
        return None

    def from_content(self, symbol: str, name: str | None = None) -> AssetRef:
        """An asset named by a file's own columns (symbol, optional name): never fails
        for a well-formed symbol, so coins we have not seeded still load."""
        known = self.resolve(symbol, strict=False)
        if known is not None:
            return known
        if not _SYMBOL_TEXT.match(_squash(symbol)):
            shown = "".join(ch for ch in symbol[:20] if ch.isprintable())
            raise AssetTextError(f"bad_symbol: {shown!r} is not 1-16 letters and digits")
        pair = self._split_pair(symbol)
        base, quote = pair if pair else (_squash(symbol), DEFAULT_QUOTE)
        display = (name or base).strip()
        check_display_text(display, "name")
        coin_id = _SEPARATORS.sub("-", display.lower()).strip("-") or base.lower()
        for alias in (display, coin_id):
            # `Symbol=AAA,Name=Ethereum` must not make `ethereum` resolve to AAA
            owner = self._by_alias.get(_squash(alias))
            if owner is not None and owner.base != base:
                raise AssetTextError(
                    f"bad_name: {display[:40]!r} belongs to the known coin {owner.base}"
                )
        coin = Coin(base, display, coin_id)
        self.add_coin(coin)
        return AssetRef(base, quote, coin.name, coin.coin_id)

    @staticmethod
    def _split_pair(text: str) -> tuple[str, str] | None:
        parts = [p for p in _SEPARATORS.split(text.strip().upper()) if p]
        if len(parts) == 2 and parts[1] in KNOWN_QUOTES:
            return parts[0], parts[1]
        squashed = "".join(parts)
        for quote in KNOWN_QUOTES:
            if squashed.endswith(quote) and len(squashed) > len(quote):
                return squashed[: -len(quote)], quote
        return None
