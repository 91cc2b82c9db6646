"""Latest prices and metrics of an asset (behind `/latest`, `/metrics`, `/symbol/{s}`).

A **series** is (asset, source, interval). An asset's *preferred* series is the one with
the newest bar; on a tie the finest interval wins. Latest values come from the `metric`
table (one small row per series and run), never from scanning `candle`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Connection, and_, func, select, type_coerce

from etl.core.intervals import INTERVAL_MS
from etl.db.models import Metric, StoredSeriesStats
from etl.read.rows import plain


def _metric_columns() -> list[Any]:
    return [c for c in Metric.__table__.c if c.name not in ("run_id",)]


def latest_metrics(conn: Connection, asset_id: int) -> list[dict[str, Any]]:
    """The newest metric row of each series of the asset, preferred series first."""
    table = Metric.__table__
    newest = (
        select(table.c.source, table.c.interval, func.max(table.c.as_of).label("as_of"))
        .where(table.c.asset_id == asset_id)
        .group_by(table.c.source, table.c.interval)
        .subquery()
    )
    rows = (
        conn.execute(
            select(*_metric_columns()).join(
                newest,
                and_(
                    table.c.asset_id == asset_id,
                    table.c.source == newest.c.source,
                    table.c.interval == newest.c.interval,
                    table.c.as_of == newest.c.as_of,
                ),
            )
        )
        .mappings()
        .all()
    )
    found = [plain(r) for r in rows]
    found.sort(key=lambda m: (-int(m["as_of"]), INTERVAL_MS.get(m["interval"], 0)))
    return found


def series_coverage(conn: Connection, asset_id: int) -> list[dict[str, Any]]:
    """First and last bar and count per series of the asset that has metrics, from the
    statistics the loader keeps (`series_stats`: no count over `candle`)."""
    stats = StoredSeriesStats.__table__
    with_metrics = (
        select(Metric.source, Metric.interval).where(Metric.asset_id == asset_id).distinct()
    ).subquery()
    rows = conn.execute(
        select(
            stats.c.source,
            stats.c.interval,
            type_coerce(stats.c.first_open, BigInteger),
            type_coerce(stats.c.last_open, BigInteger),
            stats.c.bars,
        ).join(
            with_metrics,
            and_(
                stats.c.asset_id == asset_id,
                stats.c.source == with_metrics.c.source,
                stats.c.interval == with_metrics.c.interval,
            ),
        )
    ).all()
    coverage = [
        {
            "source": source,
            "interval": interval,
            "first_open": int(first),
            "last_open": int(last),
            "bars": int(bars),
        }
        for source, interval, first, last, bars in rows
        if bars
    ]
    return sorted(coverage, key=lambda c: (c["source"], INTERVAL_MS[c["interval"]]))
