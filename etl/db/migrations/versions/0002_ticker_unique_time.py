"""One ticker per asset, source and time: duplicates (written by retried Gemini steps)
are removed, keeping the first row of each, and a unique index replaces the plain one.

Revision ID: 0002_ticker_unique
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0002_ticker_unique"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = ["asset_id", "source", "observed_at"]


def upgrade() -> None:
    # Portable SQL (SQLite and PostgreSQL): a row goes when an older row (lower id) has
    # the same key. The plain index on the key makes the lookup cheap.
    op.execute(
        "DELETE FROM ticker WHERE EXISTS (SELECT 1 FROM ticker AS older "
        "WHERE older.asset_id = ticker.asset_id AND older.source = ticker.source "
        "AND older.observed_at = ticker.observed_at AND older.id < ticker.id)"
    )
    op.create_index("ux_ticker_asset_time", "ticker", COLUMNS, unique=True)
    op.drop_index("ix_ticker_asset_time", table_name="ticker")


def downgrade() -> None:
    op.create_index("ix_ticker_asset_time", "ticker", COLUMNS)
    op.drop_index("ux_ticker_asset_time", table_name="ticker")
