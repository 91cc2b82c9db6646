"""The stream worker's connection sessions.

Revision ID: 0003_stream_session
Revises: 0002_ticker_unique
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_stream_session"
down_revision = "0002_ticker_unique"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_session",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("bad_messages", sa.Integer(), nullable=False),
        sa.Column("reconnect_reason", sa.String(32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_stream_session_started_at", "stream_session", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_stream_session_started_at", table_name="stream_session")
    op.drop_table("stream_session")
