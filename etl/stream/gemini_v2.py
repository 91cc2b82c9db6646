"""Gemini's v2 market data WebSocket, and nothing else: the one place that knows its wire
format (see the shared reference gemini-api.md). Gemini marks v2 as superseded; a second
protocol or exchange is one more class with the same two methods (`subscribe_message`,
`parse`) producing the same events.

Messages become typed events; anything else becomes a `BadMessage` with a reason, never an
exception: JSON that does not parse, an unknown `type`, wrong shapes, non-positive prices.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

MINUTE_MS = 60_000
SIDES = {"buy": "bid", "sell": "ask"}  # an l2 change's side names the book side


@dataclass(frozen=True)
class Level:
    side: str  # "bid" or "ask"
    price: Decimal
    quantity: Decimal  # the new total at that price; 0 removes the level


@dataclass(frozen=True)
class BookSnapshot:
    symbol: str
    levels: tuple[Level, ...]


@dataclass(frozen=True)
class BookChange:
    symbol: str
    levels: tuple[Level, ...]


@dataclass(frozen=True)
class Trade:
    symbol: str
    event_id: int
    time_ms: int
    price: float
    quantity: float
    live: bool = True  # False: one of the recent trades the book snapshot repeats


@dataclass(frozen=True)
class Bar:
    open_time: int  # epoch ms
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class CandleUpdate:
    symbol: str
    interval: str  # "1m"
    bars: tuple[Bar, ...]  # oldest first


@dataclass(frozen=True)
class Heartbeat:
    pass


@dataclass(frozen=True)
class ExchangeError:
    """The exchange refused something (`NoValidTradingPairs` for an unknown pair)."""

    reason: str


@dataclass(frozen=True)
class BadMessage:
    reason: str
    raw: str


Event = BookSnapshot | BookChange | Trade | CandleUpdate | Heartbeat | ExchangeError | BadMessage


class ShapeError(ValueError):
    """A message that is JSON but not of a shape Gemini documents."""


class GeminiV2:
    """Gemini v2 market data: `l2` (book and trades) and `candles_1m` per symbol."""

    name = "gemini_v2"

    def subscribe_message(self, symbols: list[str]) -> str:
        upper = [s.upper() for s in symbols]  # lower case is refused (NoValidTradingPairs)
        return json.dumps(
            {
                "type": "subscribe",
                "subscriptions": [
                    {"name": "l2", "symbols": upper},
                    {"name": "candles_1m", "symbols": upper},
                ],
            }
        )

    def parse(self, raw: str | bytes) -> list[Event]:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            message = json.loads(text)
        except ValueError as exc:
            return [BadMessage(f"malformed_json: {exc}", text)]
        try:
            return self._events(message)
        except ShapeError as exc:
            return [BadMessage(f"bad_shape: {exc}", text)]

    def _events(self, message: Any) -> list[Event]:
        if not isinstance(message, dict):
            raise ShapeError(f"not an object: {type(message).__name__}")
        if message.get("result") == "error" or message.get("type") == "error":
            return [ExchangeError(str(message.get("reason") or message.get("message")))]
        kind = message.get("type")
        if kind == "heartbeat":
            return [Heartbeat()]
        if kind == "trade":
            return [_trade(message)]
        if kind == "l2_updates":
            return _l2(message)
        if kind == "candles_1m_updates":
            symbol = _symbol(message)
            rows = _list(message.get("changes"), "changes")
            bars = sorted((_bar(row) for row in rows), key=lambda b: b.open_time)
            return [CandleUpdate(symbol, "1m", tuple(bars))]
        raise ShapeError(f"unknown type {kind!r:.40}")


def _l2(message: dict[str, Any]) -> list[Event]:
    symbol = _symbol(message)
    levels = tuple(_level(change) for change in _list(message.get("changes"), "changes"))
    # Only the first message after subscribing carries the last trades: it is the whole book.
    if "trades" in message:
        trades = [replace(_trade(t), live=False) for t in _list(message.get("trades"), "trades")]
        return [BookSnapshot(symbol, levels), *trades]
    return [BookChange(symbol, levels)]


def _trade(message: Any) -> Trade:
    if not isinstance(message, dict):
        raise ShapeError("trade is not an object")
    event_id, time_ms = message.get("event_id"), message.get("timestamp")
    if not isinstance(event_id, int) or not isinstance(time_ms, int) or _is_bool(event_id, time_ms):
        raise ShapeError("trade without integer event_id/timestamp")
    price = _positive(message.get("price"), "trade price")
    quantity = _decimal(message.get("quantity"), "trade quantity")
    if quantity <= 0:
        raise ShapeError(f"non_positive quantity {quantity}")
    return Trade(_symbol(message), int(event_id), int(time_ms), float(price), float(quantity))


def _level(change: Any) -> Level:
    if not isinstance(change, list) or len(change) != 3 or change[0] not in SIDES:
        raise ShapeError(f"l2 change is not [side, price, quantity]: {change!r:.80}")
    quantity = _decimal(change[2], "quantity")
    if quantity < 0:
        raise ShapeError(f"negative quantity {quantity}")
    return Level(SIDES[change[0]], _positive(change[1], "price"), quantity)


def _bar(row: Any) -> Bar:
    if not isinstance(row, list) or len(row) != 6 or not all(_is_number(v) for v in row):
        raise ShapeError(f"candle row is not [t, o, h, l, c, v] numbers: {row!r:.80}")
    time_ms, open_, high, low, close, volume = row
    if not _is_int(time_ms) or time_ms % MINUTE_MS:
        raise ShapeError(f"candle time {time_ms} is not a whole minute in ms")
    if min(open_, high, low, close) <= 0:
        raise ShapeError(f"non_positive price in candle {row!r:.80}")
    if high < max(open_, close, low) or low > min(open_, close) or volume < 0:
        raise ShapeError(f"inconsistent candle {row!r:.80}")
    return Bar(int(time_ms), float(open_), float(high), float(low), float(close), float(volume))


def _symbol(message: dict[str, Any]) -> str:
    symbol = message.get("symbol")
    if not isinstance(symbol, str) or not symbol.isalnum():
        raise ShapeError(f"bad symbol {symbol!r:.40}")
    return symbol.upper()


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ShapeError(f"{name} is not a list")
    return value


def _decimal(value: Any, name: str) -> Decimal:
    if not isinstance(value, str):  # Gemini sends prices and amounts as strings
        raise ShapeError(f"{name} is not a decimal string: {value!r:.40}")
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise ShapeError(f"{name} is not a decimal: {value!r:.40}") from exc
    if not number.is_finite():
        raise ShapeError(f"{name} is not finite: {value!r:.40}")
    return number


def _positive(value: Any, name: str) -> Decimal:
    number = _decimal(value, name)
    if number <= 0:
        raise ShapeError(f"non_positive {name} {number}")
    return number


def _is_bool(*values: Any) -> bool:
    return any(isinstance(v, bool) for v in values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
