"""Alembic owns the schema: `alembic upgrade head` and the pipeline's own migrate produce
exactly the models' schema on both databases, and migrating twice is a no-op."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from etl.core.settings import get_settings
from etl.db.engine import create_db_engine, current_revision, head_revision, migrate
from etl.db.models import Base
from etl.db.upgrade import script_head

ROOT = Path(__file__).resolve().parents[3]


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    assert current_revision(engine) == head_revision()
    assert migrate(engine) == head_revision()  # idempotent


def test_alembic_command_line_creates_the_schema(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    engine = create_db_engine(get_settings(database_url=database_url))
    try:
        assert {"asset", "candle", "etl_run", "quality_report", "rejected_row"} <= set(
            inspect(engine).get_table_names()
        )
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_the_cheap_schema_readings_agree_with_alembic(database_url: str) -> None:
    """`head_revision` and `current_revision` read the scripts and the version table without
    Alembic (start-up); they must say what Alembic says, before and after a migration."""
    assert head_revision() == script_head() is not None
    engine = create_db_engine(get_settings(database_url=database_url))
    try:
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() is None
        assert current_revision(engine) is None
        assert migrate(engine) == script_head()
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == script_head()
        assert current_revision(engine) == script_head()
    finally:
        engine.dispose()
