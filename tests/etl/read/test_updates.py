"""The read side of streaming: new ticker rows by id, written candle bars by write time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, insert

from etl.db.models import Asset, Candle, Ticker
from etl.read.updates import (
    CandleUpdate,
    PriceUpdate,
    candle_high_water,
    candles_since,
    prices_since,
    ticker_high_water,
    update_from_json,
    update_to_json,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _asset(engine: Engine) -> int:
    with engine.begin() as conn:
        row = {"symbol": "BTCUSD", "base": "BTC", "quote": "USD", "name": "Bitcoin"}
        result = conn.execute(insert(Asset).values(**row, coin_id="bitcoin"))
        return int(result.inserted_primary_key[0])


def _ticker(engine: Engine, asset_id: int, ms: int, last: float) -> None:
    row = {"asset_id": asset_id, "source": "gemini", "observed_at": at(ms), "last": last}
    with engine.begin() as conn:
        conn.execute(insert(Ticker).values(**row, bid=last - 1, ask=last + 1))


def _bar(engine: Engine, asset_id: int, open_ms: int, written_ms: int, close: float) -> None:
    prices = {"open": close, "high": close, "low": close, "close": close, "volume": 1.0}
    row = {"asset_id": asset_id, "source": "gemini", "interval": "1m", "open_time": at(open_ms)}
    row |= {"close_time": at(open_ms + 60_000), "batch_id": 1, "ingested_at": at(written_ms)}
    with engine.begin() as conn:
        conn.execute(insert(Candle).values(**row, **prices))


def test_prices_since_returns_rows_after_the_id_oldest_first(engine: Engine) -> None:
    asset_id = _asset(engine)
    with engine.connect() as conn:
        assert ticker_high_water(conn) == 0
    _ticker(engine, asset_id, T0, 10.0)
    with engine.connect() as conn:
        mark = ticker_high_water(conn)
    _ticker(engine, asset_id, T0 + 1000, 11.0)
    _ticker(engine, asset_id, T0 + 2000, 12.0)
    with engine.connect() as conn:
        new = prices_since(conn, mark)
        limited = prices_since(conn, mark, limit=1)
    assert [update for _, update in new] == [
        PriceUpdate("BTCUSD", "gemini", 11.0, 10.0, 12.0, T0 + 1000),
        PriceUpdate("BTCUSD", "gemini", 12.0, 11.0, 13.0, T0 + 2000),
    ]
    assert [row_id for row_id, _ in new] == [mark + 1, mark + 2]
    assert new[0][1].spread == 2.0
    assert limited == new[:1]


def test_candles_since_follows_write_time_and_leaves_old_bars_out(engine: Engine) -> None:
    asset_id = _asset(engine)
    _bar(engine, asset_id, T0, written_ms=T0 + 10, close=1.0)
    with engine.connect() as conn:
        mark = candle_high_water(conn)
    assert mark == T0 + 10
    _bar(engine, asset_id, T0 + 60_000, written_ms=T0 + 70_000, close=2.0)  # forming
    _bar(engine, asset_id, T0 - 600_000, written_ms=T0 + 70_000, close=3.0)  # backfill
    with engine.connect() as conn:
        new = candles_since(conn, mark, now_ms=T0 + 90_000, closing_after_ms=T0)
        later = candles_since(conn, mark, now_ms=T0 + 200_000, closing_after_ms=T0)
    assert [(written, bar.close, bar.closed) for written, bar in new] == [(T0 + 70_000, 2.0, False)]
    assert new[0][1] == CandleUpdate(
        "BTCUSD", "gemini", "1m", T0 + 60_000, T0 + 120_000, 2.0, 2.0, 2.0, 2.0, 1.0, closed=False
    )
    assert later[0][1].closed is True  # its close time has passed


def test_updates_round_trip_through_json() -> None:
    price = PriceUpdate("ETHUSD", "gemini", 2.5, None, 3.0, T0)
    bar = CandleUpdate("ETHUSD", "gemini", "1m", T0, T0 + 60_000, 1, 2, 0.5, 1.5, None, True)
    assert update_from_json(update_to_json(price)) == price
    assert update_from_json(update_to_json(bar)) == bar


@pytest.mark.parametrize(
    "message",
    [b"", b"[1]", b'{"kind": "trade"}', b'{"kind": "price", "symbol": "X"}', b'{"symbol": 1}'],
)
def test_a_message_that_is_not_an_update_is_a_value_error(message: bytes) -> None:
    with pytest.raises(ValueError, match="not an update message"):
        update_from_json(message)
