"""Publishing price and candle updates to Redis, one JSON message per update on one
channel: every API worker and replica subscribed to it pushes them to its stream clients.

A writer (the stream worker) publishes on receipt, before its batched database write, so
clients see a price without waiting for the write. Fire-and-forget by design: pub/sub keeps
nothing, and a subscriber that was away resumes from the database, not from Redis. The
message shape is `etl.read.updates.update_from_json`'s (kind + the update's fields).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

CHANNEL = "crypto:updates"


class Publisher(Protocol):
    """What publishing needs of a client: `redis.Redis` has it."""

    def publish(self, channel: str, message: bytes) -> Any: ...


def price_message(
    *,
    symbol: str,
    source: str,
    price: float,
    bid: float | None,
    ask: float | None,
    as_of_ms: int,
) -> bytes:
    """One price, as published."""
    fields = {"kind": "price", "symbol": symbol, "source": source, "price": price}
    fields |= {"bid": bid, "ask": ask, "as_of": as_of_ms}
    return _encoded(fields)


def candle_message(
    *,
    symbol: str,
    source: str,
    interval: str,
    open_time_ms: int,
    close_time_ms: int,
    ohlc: tuple[float, float, float, float],
    volume: float | None,
    closed: bool,
) -> bytes:
    """One bar (forming or `closed`), as published."""
    o, h, lo, c = ohlc
    fields: dict[str, Any] = {"kind": "candle", "symbol": symbol, "source": source}
    fields |= {"interval": interval, "open_time": open_time_ms, "close_time": close_time_ms}
    fields |= {"open": o, "high": h, "low": lo, "close": c, "volume": volume, "closed": closed}
    return _encoded(fields)


def publish_price(client: Publisher, *, channel: str = CHANNEL, **fields: Any) -> int:
    """Publish one price (`price_message`'s fields); returns how many subscribers got it."""
    return int(client.publish(channel, price_message(**fields)))


def publish_candle(client: Publisher, *, channel: str = CHANNEL, **fields: Any) -> int:
    """Publish one bar (`candle_message`'s fields); returns how many subscribers got it."""
    return int(client.publish(channel, candle_message(**fields)))


def _encoded(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode()
