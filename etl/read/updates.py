"""New prices and candle bars as typed updates: what the API pushes to stream clients.

Any writer of `ticker` and `candle` rows feeds them (the batch pipeline today, the stream
worker later). Tickers are followed by their `id`; candles have no id (their key is the
series and open time, and a bar is rewritten while it forms), so they are followed by
`ingested_at`, the epoch-ms time of their last write (indexed by migration 0004).
The same shapes travel as JSON through Redis (`etl.load.updates` publishes them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import BigInteger, Connection, func, select, type_coerce

from etl.db.models import Asset, Candle, Ticker


@dataclass(frozen=True, slots=True)
class PriceUpdate:
    symbol: str
    source: str
    price: float
    bid: float | None
    ask: float | None
    as_of: int  # epoch ms the price was observed
    kind: Literal["price"] = "price"

    @property
    def spread(self) -> float | None:
        return self.ask - self.bid if self.ask is not None and self.bid is not None else None


@dataclass(frozen=True, slots=True)
class CandleUpdate:
    symbol: str
    source: str
    interval: str
    open_time: int  # epoch ms
    close_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float | None
    closed: bool  # the bar's close time has passed: it will not change again
    kind: Literal["candle"] = "candle"


Update = PriceUpdate | CandleUpdate


def _ms(column: Any) -> Any:
    return type_coerce(column, BigInteger)


def ticker_high_water(conn: Connection) -> int:
    """The newest ticker id (0 when there is none): following starts after it."""
    return int(conn.execute(select(func.coalesce(func.max(Ticker.id), 0))).scalar_one())


def candle_high_water(conn: Connection) -> int:
    """The newest candle write time, epoch ms (0 when there is none)."""
    newest = select(func.coalesce(func.max(_ms(Candle.ingested_at)), 0))
    return int(conn.execute(newest).scalar_one())


def prices_since(
    conn: Connection, after_id: int, *, limit: int = 1000
) -> list[tuple[int, PriceUpdate]]:
    """Ticker rows with an id over `after_id`, oldest first, as (id, update)."""
    rows = conn.execute(
        select(
            Ticker.id,
            Asset.symbol,
            Ticker.source,
            Ticker.last,
            Ticker.bid,
            Ticker.ask,
            _ms(Ticker.observed_at),
        )
        .join(Asset, Asset.id == Ticker.asset_id)
        .where(Ticker.id > after_id)
        .order_by(Ticker.id)
        .limit(limit)
    )
    return [
        (row_id, PriceUpdate(symbol, source, float(last), bid, ask, int(observed)))
        for row_id, symbol, source, last, bid, ask, observed in rows
    ]


def candles_since(
    conn: Connection, after_ms: int, *, now_ms: int, closing_after_ms: int
) -> list[tuple[int, CandleUpdate]]:
    """Candle rows written after `after_ms` whose bar closes after `closing_after_ms`, as
    (ingested_at, update), oldest write first. Not limited: a write is one transaction with
    one `ingested_at`, and a limit could split it between two reads and lose the rest.
    `closing_after_ms` keeps a history backfill (years of daily bars) off the stream."""
    rows = conn.execute(
        select(
            _ms(Candle.ingested_at),
            Asset.symbol,
            Candle.source,
            Candle.interval,
            _ms(Candle.open_time),
            _ms(Candle.close_time),
            Candle.open,
            Candle.high,
            Candle.low,
            Candle.close,
            Candle.volume,
        )
        .join(Asset, Asset.id == Candle.asset_id)
        .where(_ms(Candle.ingested_at) > after_ms, _ms(Candle.close_time) > closing_after_ms)
        .order_by(_ms(Candle.ingested_at), Candle.asset_id, _ms(Candle.open_time))
    )
    out = []
    for written, symbol, source, interval, open_ms, close_ms, o, h, lo, c, vol in rows:
        bar = CandleUpdate(
            symbol,
            source,
            interval,
            int(open_ms),
            int(close_ms),
            o,
            h,
            lo,
            c,
            vol,
            closed=int(close_ms) <= now_ms,
        )
        out.append((int(written), bar))
    return out


def update_to_json(update: Update) -> bytes:
    return json.dumps(asdict(update), separators=(",", ":")).encode()


def update_from_json(message: bytes | str) -> Update:
    """The update a JSON message carries; ValueError (with the reason) when it is not one."""
    try:
        fields = json.loads(message)
        kind = fields.pop("kind")
        if kind == "price":
            return PriceUpdate(**fields)
        if kind == "candle":
            return CandleUpdate(**fields)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"not an update message: {exc}") from exc
    raise ValueError(f"not an update message: unknown kind {kind!r}")
