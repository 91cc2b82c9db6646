"""The full-scan computations that the loader's stored statistics replaced, kept as the
tests' (and the benchmark's) oracle: `series_profile` and `_gap_edges` as they were in
`etl/read/series.py` before `series_stats` (count, min, max and zero-volume bars over the
whole series, and a window over the whole series when the count does not match the span),
the old `series_coverage` of `etl/read/prices.py` (min/max/count per series), the truth
the stored statistics must equal at every moment (every gap, whatever the count), and the
check that every test loading bars can make (`assert_stored_equals_full_scan`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, case, func, select, text
from sqlalchemy.sql.elements import ColumnElement

from etl.core.intervals import INTERVAL_MS, interval_ms
from etl.core.series import SeriesKey, SeriesProfile, SeriesStats
from etl.db.models import Candle, Metric
from etl.db.series_stats import stored_stats
from etl.read import series
from etl.read.rows import RAW_OPEN_TIME
from etl.transform.quality import missing_bars, quality_report


def _series_filter(key: SeriesKey) -> tuple[ColumnElement[bool], ...]:
    asset_id, source, interval = key
    return (Candle.asset_id == asset_id, Candle.source == source, Candle.interval == interval)


def series_profile(conn: Connection, key: SeriesKey) -> SeriesProfile | None:
    """The old full-scan profile, verbatim."""
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


def stored_truth(conn: Connection, key: SeriesKey) -> dict[str, Any] | None:
    """What `series_stats` and `series_gap` must hold for the series, from a full scan."""
    profile = series_profile(conn, key)
    if profile is None:
        return None
    edges = _gap_edges(conn, key)
    step = interval_ms(key[2])
    return {
        "bars": profile.bars,
        "first_open": profile.first_open,
        "last_open": profile.last_open,
        "zero_volume_bars": profile.zero_volume_bars,
        "gap_count": len(edges),
        "missing_bars": sum(missing_bars(a, b, step) for a, b in edges),
        "gaps": edges,
    }


def series_coverage(conn: Connection, asset_id: int) -> list[dict[str, Any]]:
    """The old `/symbol` coverage, verbatim: min/max/count over each series per call."""
    series = conn.execute(
        select(Metric.source, Metric.interval).where(Metric.asset_id == asset_id).distinct()
    ).all()
    coverage = []
    for source, interval in series:
        first, last, bars = conn.execute(
            select(func.min(RAW_OPEN_TIME), func.max(RAW_OPEN_TIME), func.count()).where(
                Candle.asset_id == asset_id, Candle.source == source, Candle.interval == interval
            )
        ).one()
        if bars:
            coverage.append(
                {
                    "source": source,
                    "interval": interval,
                    "first_open": int(first),
                    "last_open": int(last),
                    "bars": int(bars),
                }
            )
    return sorted(coverage, key=lambda c: (c["source"], INTERVAL_MS[c["interval"]]))


RUN_STATS = [SeriesStats(), SeriesStats(rows=10, null_cells=1, required_cells=50)]


def stored(conn: Connection, key: SeriesKey) -> dict[str, Any] | None:
    totals = stored_stats(conn, key)
    if totals is None:
        return None
    gaps = conn.execute(
        text(
            "SELECT before_open, after_open FROM series_gap WHERE asset_id = :a AND source = :s "
            "AND interval = :i ORDER BY before_open"
        ),
        {"a": key[0], "s": key[1], "i": key[2]},
    ).all()
    return {**vars(totals), "gaps": [(int(a), int(b)) for a, b in gaps]}


def assert_stored_equals_full_scan(engine: Engine, source: str | None = None) -> int:
    """Every series (of `source`, or all): stored statistics == the full scan's, and the
    quality report from them == the old full-scan report. Returns how many series."""
    where = "" if source is None else " WHERE source = :s"
    sql = f"SELECT asset_id, source, interval FROM candle{where} " + (
        f"UNION SELECT asset_id, source, interval FROM series_stats{where}"
    )
    with engine.connect() as conn:
        keys = [(int(a), s, i) for a, s, i in conn.execute(text(sql), {"s": source}).all()]
        for key in keys:
            assert stored(conn, key) == stored_truth(conn, key), key
            new, old = series.series_profile(conn, key), series_profile(conn, key)
            assert (new is None) == (old is None), key
            if new is None or old is None:
                continue
            for run in RUN_STATS:
                assert quality_report(
                    new, interval=key[2], stats=run, now_ms=1_750_000_000_000
                ) == (quality_report(old, interval=key[2], stats=run, now_ms=1_750_000_000_000)), (
                    key
                )
    return len(keys)
