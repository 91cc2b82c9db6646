"""`candle_rollup`: coarser bars of each stored series, kept by the loaders so that a candle
page of any interval reads a bounded range. Built here for the bars already stored (an
existing deployment's pages are served from them at once).

Revision ID: 0006_candle_rollup
Revises: 0005_price_point
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_candle_rollup"
down_revision = "0005_price_point"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "candle_rollup",
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("base", sa.String(8), nullable=False),
        sa.Column("interval", sa.String(8), nullable=False),
        sa.Column("open_time", sa.BigInteger(), nullable=False),
        sa.Column("open", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("close", sa.Float(), nullable=False),
        sa.Column("volume", sa.Float(), nullable=True),
        sa.Column("volume_quote", sa.Float(), nullable=True),
        sa.Column("bars", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("asset_id", "source", "base", "interval", "open_time"),
    )
    # The loaders' own code builds them, so they are the rollups a load would have kept.
    from etl.load.rollups import rebuild

    rebuild(op.get_bind())


def downgrade() -> None:
    op.drop_table("candle_rollup")
