"""What the rollup tests share: writing bars through the product's writer, and comparing
the rollup-backed reads (`etl.read.candles`) and the stored rollups with the full
resampling (`tests.etl.read.candle_oracle`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Connection, Engine, func, select, type_coerce

from etl.core.intervals import INTERVAL_MS, MINUTE_MS, rollup_levels
from etl.db.engine import write_transaction
from etl.db.models import Candle, CandleRollup
from etl.load.writer import open_candle_writer
from etl.read.candles import candle_page, candle_span
from tests.etl.read.candle_oracle import oracle_page, oracle_span

END = 2**62
EVERYTHING = 10**9  # a limit above any series' bar count


def minute_bars(count: int, *, start_ms: int, seed: int, asset_id: int = 1) -> pd.DataFrame:
    """`count` minute bars from `start_ms` (a random walk; some volumes NULL), as the writer
    takes them."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, count)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0, 0.0005, count)) * close
    volume = rng.exponential(3.0, count)
    volume[rng.random(count) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "asset_id": np.full(count, asset_id, np.int64),
            "open_time": start_ms + np.arange(count, dtype=np.int64) * MINUTE_MS,
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": volume,
            "volume_quote": volume * close,
        }
    )


def write_bars(
    engine: Engine, frame: pd.DataFrame, *, source: str = "test", interval: str = "1m"
) -> None:
    """One batch through the product's writer (rollups kept as every loader keeps them)."""
    with write_transaction(engine) as conn:
        writer = open_candle_writer(conn, source=source, interval=interval, batch_id=1, now_ms=0)
        try:
            writer.add(frame)
            writer.finish()
        finally:
            writer.close()


def page_pairs(
    conn: Connection,
    *,
    asset_id: int,
    source: str,
    stored: str,
    interval: str,
    start_ms: int = 0,
    end_ms: int = END,
    limit: int = EVERYTHING,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the rollup-backed page, the full resampling's page) for the same request."""
    request: dict[str, Any] = {
        "asset_id": asset_id,
        "source": source,
        "stored": stored,
        "interval": interval,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "limit": limit,
    }
    return candle_page(conn, **request), oracle_page(conn, **request)


def span_pair(
    conn: Connection, **request: Any
) -> tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]:
    return candle_span(conn, **request), oracle_span(conn, **request)


def rollups_as_resampled(conn: Connection, asset_id: int, source: str, base: str) -> None:
    """Every stored rollup of one series equals the full resampling of its stored bars,
    bucket for bucket (and none is missing or left over)."""
    for level in rollup_levels(base):
        kept = conn.execute(
            select(
                type_coerce(CandleRollup.open_time, BigInteger),
                CandleRollup.open,
                CandleRollup.high,
                CandleRollup.low,
                CandleRollup.close,
                CandleRollup.volume,
                CandleRollup.volume_quote,
                CandleRollup.bars,
            )
            .where(
                CandleRollup.asset_id == asset_id,
                CandleRollup.source == source,
                CandleRollup.base == base,
                CandleRollup.interval == level,
            )
            .order_by(CandleRollup.open_time)
        ).all()
        expected = oracle_page(
            conn,
            asset_id=asset_id,
            source=source,
            stored=base,
            interval=level,
            start_ms=0,
            end_ms=END,
            limit=EVERYTHING,
        )
        fields = ("open_time", "open", "high", "low", "close", "volume", "volume_quote", "bars")
        assert [tuple(r) for r in kept] == [tuple(b[f] for f in fields) for b in expected], level


def api_intervals(stored: str) -> list[str]:
    """The API intervals a series stored at `stored` serves."""
    step = INTERVAL_MS[stored]
    return [name for name, ms in INTERVAL_MS.items() if ms % step == 0]


def every_rollup_as_resampled(engine: Engine) -> int:
    """`rollups_as_resampled` for every stored series; returns how many rollup rows."""
    with engine.connect() as conn:
        series = conn.execute(select(Candle.asset_id, Candle.source, Candle.interval).distinct())
        for asset_id, source, stored in series.all():
            rollups_as_resampled(conn, asset_id, source, stored)
        return int(conn.execute(select(func.count()).select_from(CandleRollup)).scalar_one())
