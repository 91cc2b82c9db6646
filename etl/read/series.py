"""Read queries over the stored data (used by the pipeline's post-load steps and the API)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Select, select
from sqlalchemy.sql.elements import ColumnElement

from etl.core.intervals import interval_ms
from etl.core.series import SeriesKey, SeriesProfile
from etl.db.models import Candle, SeriesGap, Ticker
from etl.db.series_stats import GAP_AFTER, GAP_BEFORE, stored_stats
from etl.read.rows import RAW_OPEN_TIME, fetch_tuples
from etl.transform.metrics import HISTORY_BARS
from etl.transform.quality import MAX_GAPS_LISTED

_VALUES = (Candle.open, Candle.high, Candle.low, Candle.close, Candle.volume, Candle.volume_quote)


def _series_filter(key: SeriesKey) -> tuple[ColumnElement[bool], ...]:
    asset_id, source, interval = key
    return (Candle.asset_id == asset_id, Candle.source == source, Candle.interval == interval)


def window_query(key: SeriesKey, *, days: int = 31) -> Select[Any]:
    """The newest bars of a series, newest first: the last `days` days, and at least
    `HISTORY_BARS` bars (a backward range of the key index, as many rows as it returns)."""
    bars = max(HISTORY_BARS, days * 86_400_000 // interval_ms(key[2]) + 1)
    return (
        select(RAW_OPEN_TIME.label("open_time"), *_VALUES)
        .where(*_series_filter(key))
        .order_by(RAW_OPEN_TIME.desc())
        .limit(bars)
    )


def series_window(conn: Connection, key: SeriesKey, *, days: int = 31) -> pd.DataFrame:
    """`window_query`'s bars oldest first, with `open_time` as epoch ms (read raw, not
    through the datetime type)."""
    query = window_query(key, days=days)
    data = np.array(fetch_tuples(conn, query), dtype=np.float64).reshape(-1, len(_VALUES) + 1)
    columns = ["open_time", *(c.key for c in _VALUES)]
    frame = pd.DataFrame(data[::-1], columns=columns)
    return frame.astype({"open_time": "int64"})


def series_profile(conn: Connection, key: SeriesKey) -> SeriesProfile | None:
    """What the quality report needs of a stored series, from the statistics the loader
    keeps (`series_stats`, one primary-key read) and its newest `MAX_GAPS_LISTED` gaps (an
    index range of `series_gap`): no read of `candle`.

    A series holding as many bars as its span has slots, with both ends on the interval's
    grid, reports no gaps (as the full scan this replaced did: it looked for gaps only
    otherwise)."""
    totals = stored_stats(conn, key)
    if totals is None or not totals.bars:
        return None
    step = interval_ms(key[2])
    span = totals.last_open - totals.first_open
    edges: list[tuple[int, int]] = []
    gap_count = missing = 0
    if not (span // step + 1 == totals.bars and span % step == 0):
        gap_count, missing = totals.gap_count, totals.missing_bars
        asset_id, source, interval = key
        newest = conn.execute(
            select(GAP_BEFORE, GAP_AFTER)
            .where(
                SeriesGap.asset_id == asset_id,
                SeriesGap.source == source,
                SeriesGap.interval == interval,
            )
            .order_by(GAP_BEFORE.desc())
            .limit(MAX_GAPS_LISTED)
        ).all()
        edges = [(int(a), int(b)) for a, b in reversed(newest)]
    return SeriesProfile(
        bars=totals.bars,
        first_open=totals.first_open,
        last_open=totals.last_open,
        zero_volume_bars=totals.zero_volume_bars,
        gap_edges=edges,
        gap_count=gap_count,
        missing_bars=missing,
    )


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
