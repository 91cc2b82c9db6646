"""Alembic's side of the schema: its configuration, its own reading of the scripts' head,
and the upgrade. Imported only when a schema must change (`etl.db.engine.migrate` on a
database behind head) or by tools and tests: a run on an up-to-date database never loads
Alembic (docs/decisions.md, "Start-up")."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from etl.db.engine import MIGRATIONS_DIR


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def script_head() -> str | None:
    """The newest migration as Alembic reads it (raises when the scripts have two heads)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(engine: Engine, lock_key: int | None = None) -> None:
    """Upgrade to head in one transaction, under `lock_key`'s advisory lock (PostgreSQL)."""
    with engine.begin() as conn:
        if lock_key is not None:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key})
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
