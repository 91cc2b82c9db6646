"""Read queries over the stored data (used by the pipeline's post-load steps and the API)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection, case, func, select
from sqlalchemy.sql.elements import ColumnElement

from etl.core.intervals import interval_ms
from etl.core.series import SeriesKey, SeriesProfile
from etl.db.models import Candle, Ticker
from etl.read.rows import RAW_OPEN_TIME, fetch_tuples
from etl.transform.metrics import HISTORY_BARS

_VALUES = (Candle.open, Candle.high, Candle.low, Candle.close, Candle.volume, Candle.volume_quote)


def _series_filter(key: SeriesKey) -> tuple[ColumnElement[bool], ...]:
    asset_id, source, interval = key
    return (Candle.asset_id == asset_id, Candle.source == source, Candle.interval == interval)


def series_window(conn: Connection, key: SeriesKey, *, days: int = 31) -> pd.DataFrame:
    """The newest bars of a series: the last `days` days, and at least `HISTORY_BARS` bars,
    oldest first, with `open_time` as epoch ms (read raw, not through the datetime type)."""
    bars = max(HISTORY_BARS, days * 86_400_000 // interval_ms(key[2]) + 1)
    query = (
        select(RAW_OPEN_TIME.label("open_time"), *_VALUES)
        .where(*_series_filter(key))
        .order_by(RAW_OPEN_TIME.desc())
        .limit(bars)
    )
    data = np.array(fetch_tuples(conn, query), dtype=np.float64).reshape(-1, len(_VALUES) + 1)
    columns = ["open_time", *(c.key for c in _VALUES)]
    frame = pd.DataFrame(data[::-1], columns=columns)
    return frame.astype({"open_time": "int64"})


def series_profile(conn: Connection, key: SeriesKey) -> SeriesProfile | None:
    volume = func.coalesce(Candle.volume, Candle.volume_quote)
    bars, first, last, zero = conn.execute(
        select(
            func.count(),
            func.min(RAW_OPEN_TIME),
            func.max(RAW_OPEN_TIME),
            func.coalesce(func.sum(case((volume == 0, 1), else_=0)), 0),
        ).where(*_series_filter(key))
    ).one()
    if not bars:
        return None
    step = interval_ms(key[2])
    if (int(last) - int(first)) // step + 1 == bars and (int(last) - int(first)) % step == 0:
        gaps = []  # as many bars as the span holds, on the grid: no gap to look for
    else:
        gaps = _gap_edges(conn, key)
    return SeriesProfile(
        bars=int(bars),
        first_open=int(first),
        last_open=int(last),
        zero_volume_bars=int(zero),
        gap_edges=gaps,
    )


def _gap_edges(conn: Connection, key: SeriesKey) -> list[tuple[int, int]]:
    ordered = (
        select(
            RAW_OPEN_TIME.label("open_time"),
            func.lead(RAW_OPEN_TIME).over(order_by=RAW_OPEN_TIME).label("next_open"),
        )
        .where(*_series_filter(key))
        .subquery()
    )
    gaps = conn.execute(
        select(ordered.c.open_time, ordered.c.next_open)
        .where(ordered.c.next_open - ordered.c.open_time > interval_ms(key[2]))
        .order_by(ordered.c.open_time)
    ).all()
    return [(int(a), int(b)) for a, b in gaps]


def latest_spread(conn: Connection, asset_id: int, source: str) -> float | None:
    """ask - bid of the newest ticker snapshot of the asset from that source."""
    row = conn.execute(
        select(Ticker.bid, Ticker.ask)
        .where(Ticker.asset_id == asset_id, Ticker.source == source)
        .order_by(Ticker.observed_at.desc(), Ticker.id.desc())
        .limit(1)
    ).first()
    if row is None or row.bid is None or row.ask is None:
        return None
    return float(row.ask - row.bid)
