"""`series_stats` and `series_gap`: per-series bar count, first and last open, zero-volume
bars and gaps, kept by the loader in the same transaction as the bars
(`etl.load.series_stats`), so the quality report and the coverage counts stop scanning
`candle`. The upgrade computes them once for the bars already stored.

Revision ID: 0007_series_stats
Revises: 0005_price_point
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from etl.core.intervals import INTERVAL_MS

revision = "0007_series_stats"
down_revision = "0006_candle_rollup"
branch_labels = None
depends_on = None

_KEY = ("asset_id", "source", "interval")


def _key_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
    ]


def upgrade() -> None:
    stats = op.create_table(
        "series_stats",
        *_key_columns(),
        sa.Column("bars", sa.BigInteger(), nullable=False),
        sa.Column("first_open", sa.BigInteger(), nullable=False),
        sa.Column("last_open", sa.BigInteger(), nullable=False),
        sa.Column("zero_volume_bars", sa.BigInteger(), nullable=False),
        sa.Column("gap_count", sa.BigInteger(), nullable=False),
        sa.Column("missing_bars", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY),
    )
    gaps = op.create_table(
        "series_gap",
        *_key_columns(),
        sa.Column("before_open", sa.BigInteger(), nullable=False),
        sa.Column("after_open", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(*_KEY, "before_open"),
    )
    _backfill(op.get_bind(), stats, gaps)


def _backfill(conn: sa.Connection, stats: sa.Table, gaps: sa.Table) -> None:
    """One aggregate over `candle`, then each series' gaps by a window over its key range
    (the same definitions as `etl.load.series_stats.rebuild_series_stats`)."""
    series = conn.execute(
        sa.text(
            "SELECT asset_id, source, interval, count(*), min(open_time), max(open_time), "
            "coalesce(sum(CASE WHEN coalesce(volume, volume_quote) = 0 THEN 1 ELSE 0 END), 0) "
            "FROM candle GROUP BY asset_id, source, interval"
        )
    ).all()
    for asset_id, source, interval, bars, first, last, zero in series:
        step = INTERVAL_MS[interval]
        edges = conn.execute(
            sa.text(
                "SELECT open_time, next_open FROM (SELECT open_time, lead(open_time) OVER "
                "(ORDER BY open_time) AS next_open FROM candle WHERE asset_id = :a "
                "AND source = :s AND interval = :i) AS ordered "
                "WHERE next_open - open_time > :step"
            ),
            {"a": asset_id, "s": source, "i": interval, "step": step},
        ).all()
        key = {"asset_id": asset_id, "source": source, "interval": interval}
        if edges:
            conn.execute(
                gaps.insert(),
                [{**key, "before_open": int(b), "after_open": int(a)} for b, a in edges],
            )
        missing = sum(
            (int(a) - int(b)) // step - 1 + int((int(a) - int(b)) % step > 0) for b, a in edges
        )
        conn.execute(
            stats.insert().values(
                **key,
                bars=int(bars),
                first_open=int(first),
                last_open=int(last),
                zero_volume_bars=int(zero),
                gap_count=len(edges),
                missing_bars=missing,
            )
        )


def downgrade() -> None:
    op.drop_table("series_gap")
    op.drop_table("series_stats")
