"""The stored statistics of one series (`series_stats`, kept by `etl.load.series_stats`),
read by primary key: the loader updates them, the quality report and the API read them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Connection, select, type_coerce

from etl.db.models import SeriesGap, StoredSeriesStats

GAP_BEFORE = type_coerce(SeriesGap.before_open, BigInteger)  # epoch ms, no datetime trip
GAP_AFTER = type_coerce(SeriesGap.after_open, BigInteger)


@dataclass(frozen=True)
class SeriesTotals:
    """One `series_stats` row's values (or a change to them); times in epoch ms."""

    bars: int
    first_open: int
    last_open: int
    zero_volume_bars: int
    gap_count: int
    missing_bars: int


def stored_stats(conn: Connection, key: tuple[int, str, str]) -> SeriesTotals | None:
    """The series' `series_stats` row (a primary-key look-up), or None."""
    table = StoredSeriesStats.__table__
    asset_id, source, interval = key
    row = conn.execute(
        select(
            table.c.bars,
            type_coerce(table.c.first_open, BigInteger),
            type_coerce(table.c.last_open, BigInteger),
            table.c.zero_volume_bars,
            table.c.gap_count,
            table.c.missing_bars,
        ).where(
            table.c.asset_id == asset_id, table.c.source == source, table.c.interval == interval
        )
    ).first()
    return None if row is None else SeriesTotals(*(int(v) for v in row))
