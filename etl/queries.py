"""Read queries over the stored data (used by the pipeline's post-load steps and the API)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import BigInteger, Connection, func, select, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from etl.intervals import interval_ms
from etl.models import Candle, EtlRun
from etl.sources.base import SeriesKey
from etl.transform.metrics import HISTORY_BARS

RAW_OPEN_TIME = type_coerce(Candle.open_time, BigInteger)  # epoch ms, no datetime round trip
_VALUES = (Candle.open, Candle.high, Candle.low, Candle.close, Candle.volume, Candle.volume_quote)


def _series_filter(key: SeriesKey) -> tuple[ColumnElement[bool], ...]:
    asset_id, source, interval = key
    return (Candle.asset_id == asset_id, Candle.source == source, Candle.interval == interval)


def series_window(conn: Connection, key: SeriesKey, *, days: int = 31) -> pd.DataFrame:
    """The newest bars of a series: the last `days` days, and at least `HISTORY_BARS` bars,
    oldest first, with `open_time` as epoch ms (read raw, not through the datetime type)."""
    bars = max(HISTORY_BARS, days * 86_400_000 // interval_ms(key[2]) + 1)
    raw_time = RAW_OPEN_TIME
    query = (
        select(raw_time.label("open_time"), *_VALUES)
        .where(*_series_filter(key))
        .order_by(raw_time.desc())
        .limit(bars)
    )
    frame = pd.DataFrame(
        conn.execute(query).all(), columns=["open_time", *(c.key for c in _VALUES)]
    )
    frame = frame.iloc[::-1].reset_index(drop=True)
    return frame.astype({c.key: "float64" for c in _VALUES} | {"open_time": "int64"})


def series_times(
    conn: Connection, key: SeriesKey
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Every bar's open time (epoch ms) and its volume (base, else quote) for quality."""
    raw_time = RAW_OPEN_TIME
    rows = conn.execute(
        select(raw_time, func.coalesce(Candle.volume, Candle.volume_quote))
        .where(*_series_filter(key))
        .order_by(raw_time)
    ).all()
    times = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    volumes = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=np.float64)
    return times, volumes


def get_run(session: Session, run_id: str) -> EtlRun | None:
    return session.get(EtlRun, run_id)
