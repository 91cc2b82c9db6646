"""Typed models of Gemini's public market-data responses (see shared gemini-api.md).

Prices and amounts arrive as JSON strings: they are parsed to `Decimal`, so the exact
source value survives until a float is needed for storage. Candles arrive as numbers,
newest first; they are returned oldest first.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

# Quote currencies by which Gemini ids end, longest first (`rlusd` before `usd`).
QUOTES = ("rlusd", "gusd", "usdt", "usdc", "dai", "usd", "eur", "gbp", "sgd", "btc", "eth")
PERPETUAL_SUFFIX = "perp"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class GeminiSymbol(_Model):
    """One entry of `/v1/symbols`, split into base and quote."""

    symbol: str  # Gemini's lower-case id, e.g. "btcusd", "btcgusdperp"
    base: str
    quote: str
    perpetual: bool

    @classmethod
    def parse(cls, symbol: str) -> GeminiSymbol:
        text = symbol.lower()
        perpetual = text.endswith(PERPETUAL_SUFFIX)
        pair = text.removesuffix(PERPETUAL_SUFFIX) if perpetual else text
        for quote in QUOTES:
            if pair.endswith(quote) and len(pair) > len(quote):
                base, found = pair[: -len(quote)], quote
                break
        else:
            base, found = pair, ""
        return cls(symbol=text, base=base.upper(), quote=found.upper(), perpetual=perpetual)


class SymbolDetails(_Model):
    symbol: str
    base_currency: str
    quote_currency: str
    tick_size: Decimal
    quote_increment: Decimal
    min_order_size: Decimal
    status: str
    product_type: str | None = None


class PubTicker(_Model):
    """`/v1/pubticker/{symbol}`: bid/ask/last and 24h volumes keyed by currency."""

    bid: Decimal | None = None
    ask: Decimal | None = None
    last: Decimal
    volume: dict[str, Decimal | int] = Field(default_factory=dict)

    def volume_in(self, currency: str) -> Decimal | None:
        value = self.volume.get(currency.upper())
        return Decimal(value) if value is not None and currency.upper() != "TIMESTAMP" else None

    @property
    def volume_timestamp_ms(self) -> int | None:
        value = self.volume.get("timestamp")
        return int(value) if value is not None else None


class TickerV2(_Model):
    """`/v2/ticker/{symbol}`: use for the 24h open/high/low and hourly changes only; its
    `close` is known to be stale (2026), so it is deliberately not modelled."""

    symbol: str
    open: Decimal
    high: Decimal
    low: Decimal
    changes: list[Decimal]  # hourly prices, newest first
    bid: Decimal | None = None
    ask: Decimal | None = None


class PriceFeedItem(_Model):
    pair: str
    price: Decimal
    change_24h: Decimal = Field(alias="percentChange24h")  # a fraction (-0.092 = -9.2%)


class CandleRow(_Model):
    """One `[time_ms, open, high, low, close, volume]` row."""

    time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    @classmethod
    def from_list(cls, row: list[Any]) -> CandleRow:
        if not isinstance(row, list) or len(row) != 6:
            raise ValueError(f"candle row is not [t, o, h, l, c, v]: {row!r}")
        names = ("time_ms", "open", "high", "low", "close", "volume")
        return cls.model_validate(dict(zip(names, row, strict=True)))


def candles_frame(rows: list[CandleRow]) -> pd.DataFrame:
    """Canonical candle columns (see `etl.extract.csv_formats`), oldest first; Gemini's
    candle volume is in the base currency."""
    frame = pd.DataFrame(
        {
            "open_time": [float(r.time_ms) for r in rows],
            "open": [r.open for r in rows],
            "high": [r.high for r in rows],
            "low": [r.low for r in rows],
            "close": [r.close for r in rows],
            "volume": [r.volume for r in rows],
        }
    )
    frame["volume_quote"] = float("nan")
    return frame.sort_values("open_time", kind="stable").reset_index(drop=True)
