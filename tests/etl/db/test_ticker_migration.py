"""Migration 0002 on both databases: duplicate tickers written before it are removed
(the first of each kept) and the unique key refuses new ones."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from etl.core.settings import Settings
from etl.db.engine import create_db_engine, current_revision, head_revision
from etl.db.upgrade import alembic_config

ROW = (
    "INSERT INTO ticker (id, asset_id, source, observed_at, last, run_id) "
    "VALUES (:id, :asset, :source, :at, :last, 'r')"
)


def upgrade_to(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


@pytest.fixture
def bare_engine(settings: Settings) -> Engine:
    return create_db_engine(settings)


def test_duplicate_tickers_are_removed_and_then_refused(bare_engine: Engine) -> None:
    engine = bare_engine
    upgrade_to(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO asset (id, symbol, base, quote, name, coin_id) "
                "VALUES (1, 'BTCUSD', 'BTC', 'USD', 'Bitcoin', 'bitcoin')"
            )
        )
        conn.execute(
            text(ROW),
            [
                {"id": 1, "asset": 1, "source": "gemini", "at": 1000, "last": 1.0},
                {"id": 2, "asset": 1, "source": "gemini", "at": 1000, "last": 2.0},  # a retry
                {"id": 3, "asset": 1, "source": "gemini", "at": 1000, "last": 3.0},  # another
                {"id": 4, "asset": 1, "source": "gemini", "at": 2000, "last": 4.0},
                {"id": 5, "asset": 1, "source": "other", "at": 1000, "last": 5.0},
            ],
        )
    upgrade_to(engine, "head")
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT id, last FROM ticker ORDER BY id")).all()
    assert [tuple(row) for row in kept] == [(1, 1.0), (4, 4.0), (5, 5.0)]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(ROW), {"id": 6, "asset": 1, "source": "gemini", "at": 1000, "last": 6})
    engine.dispose()
