"""Initial schema: assets, candles, tickers, metrics, run ledger, quality, quarantine.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "asset",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("symbol", sa.String(32), nullable=False, unique=True),
        sa.Column("base", sa.String(16), nullable=False),
        sa.Column("quote", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("coin_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_asset_coin_id", "asset", ["coin_id"])
    op.create_table(
        "etl_run",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sources", JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'success', 'partial', 'failed')", name="ck_etl_run_status"
        ),
    )
    op.create_index("ix_etl_run_started_at", "etl_run", ["started_at"])
    op.create_table(
        "source_batch",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("etl_run.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(1024), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=True, unique=True),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_rejected", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_source_batch_run_id", "source_batch", ["run_id"])
    op.create_table(
        "candle",
        sa.Column("asset_id", sa.Integer(), primary_key=True),  # no FK: see etl.db.models.Candle
        sa.Column("source", sa.String(32), primary_key=True),
        sa.Column("interval", sa.String(8), primary_key=True),
        sa.Column("open_time", sa.BigInteger(), primary_key=True),
        sa.Column("close_time", sa.BigInteger(), nullable=False),
        sa.Column("open", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("close", sa.Float(), nullable=False),
        sa.Column("volume", sa.Float(), nullable=True),
        sa.Column("volume_quote", sa.Float(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("ingested_at", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "ticker",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("asset_id", sa.Integer(), sa.ForeignKey("asset.id"), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("observed_at", sa.BigInteger(), nullable=False),
        sa.Column("bid", sa.Float(), nullable=True),
        sa.Column("ask", sa.Float(), nullable=True),
        sa.Column("last", sa.Float(), nullable=False),
        sa.Column("volume_base_24h", sa.Float(), nullable=True),
        sa.Column("volume_quote_24h", sa.Float(), nullable=True),
        sa.Column("raw", JSON, nullable=True),
        sa.Column("run_id", sa.String(36), nullable=True),
    )
    op.create_index("ix_ticker_asset_time", "ticker", ["asset_id", "source", "observed_at"])
    metric_values = [
        "change_1h",
        "change_pct_1h",
        "change_24h",
        "change_pct_24h",
        "change_7d",
        "change_pct_7d",
        "change_30d",
        "change_pct_30d",
        "high_24h",
        "low_24h",
        "volume_24h",
        "volume_quote_24h",
        "volatility_7d",
        "volatility_30d",
        "sma_7",
        "sma_30",
        "ema_7",
        "ema_30",
        "vwap_24h",
        "vwap_30d",
        "max_drawdown_30d",
        "spread",
    ]
    op.create_table(
        "metric",
        sa.Column("asset_id", sa.Integer(), sa.ForeignKey("asset.id"), primary_key=True),
        sa.Column("source", sa.String(32), primary_key=True),
        sa.Column("interval", sa.String(8), primary_key=True),
        sa.Column("as_of", sa.BigInteger(), primary_key=True),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("computed_at", sa.BigInteger(), nullable=False),
        sa.Column("last_price", sa.Float(), nullable=False),
        *[sa.Column(name, sa.Float(), nullable=True) for name in metric_values],
    )
    op.create_table(
        "quality_report",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("etl_run.id"), nullable=False),
        sa.Column("asset_id", sa.Integer(), sa.ForeignKey("asset.id"), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("computed_at", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("completeness", sa.Float(), nullable=False),
        sa.Column("consistency", sa.Float(), nullable=False),
        sa.Column("coverage", sa.Float(), nullable=False),
        sa.Column("freshness_seconds", sa.Float(), nullable=False),
        sa.Column("bar_count", sa.Integer(), nullable=False),
        sa.Column("missing_bars", sa.Integer(), nullable=False),
        sa.Column("zero_volume_bars", sa.Integer(), nullable=False),
        sa.Column("first_open", sa.BigInteger(), nullable=False),
        sa.Column("last_open", sa.BigInteger(), nullable=False),
        sa.Column("gaps", JSON, nullable=False),
        sa.Column("breakdown", JSON, nullable=False),
    )
    op.create_index(
        "ix_quality_series", "quality_report", ["asset_id", "source", "interval", "run_id"]
    )
    op.create_table(
        "rejected_row",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("etl_run.id"), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("file", sa.String(1024), nullable=False),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_rejected_row_run_id", "rejected_row", ["run_id"])


def downgrade() -> None:
    for table in (
        "rejected_row",
        "quality_report",
        "metric",
        "ticker",
        "candle",
        "source_batch",
        "etl_run",
        "asset",
    ):
        op.drop_table(table)
