"""An index on `candle.ingested_at`: the API follows new and rewritten bars by their
write time (`etl.read.updates.candles_since`, polled every STREAM_POLL_SECONDS when no
Redis carries updates); without it every poll scans the whole candle table.

Revision ID: 0004_candle_ingested
Revises: 0003_stream_session
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0004_candle_ingested"
down_revision = "0003_stream_session"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_candle_ingested_at", "candle", ["ingested_at"])


def downgrade() -> None:
    op.drop_index("ix_candle_ingested_at", table_name="candle")
