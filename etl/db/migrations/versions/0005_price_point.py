"""`price_point`: prices without a bar around them (CoinGecko's daily snapshots), kept
apart from `candle` so no reader takes them for OHLC bars.

Revision ID: 0005_price_point
Revises: 0004_candle_ingested
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_price_point"
down_revision = "0004_candle_ingested"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "price_point",
        sa.Column("asset_id", sa.Integer(), sa.ForeignKey("asset.id"), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("day", sa.BigInteger(), nullable=False),
        sa.Column("observed_at", sa.BigInteger(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("market_cap", sa.Float(), nullable=True),
        sa.Column("volume_quote_24h", sa.Float(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("ingested_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("asset_id", "source", "day"),
    )


def downgrade() -> None:
    op.drop_table("price_point")
