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
from etl.db.engine import (
    UNSETTLED,
    create_db_engine,
    current_revision,
    declared_head,
    head_revision,
    migrate,
)
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


def scripts(folder: Path, *bodies: str) -> Path:
    folder.mkdir()
    for number, body in enumerate(bodies):
        (folder / f"{number:04d}_step.py").write_text(f'"""A step."""\n{body}\n')
    return folder


def test_the_declared_head_is_the_revision_no_script_names_as_its_parent(
    tmp_path: Path,
) -> None:
    linear = scripts(
        tmp_path / "linear",
        'revision = "a"\ndown_revision = None',
        'revision: str = "b"\ndown_revision: str | None = "a"',  # Alembic's newer template
        'revision = "c"\ndown_revision = "b"',
    )
    assert declared_head(linear) == "c"
    merged = scripts(
        tmp_path / "merged",
        'revision = "a"\ndown_revision = None',
        'revision = "b1"\ndown_revision = "a"',
        'revision = "b2"\ndown_revision = "a"',
        'revision = "m"\ndown_revision = ("b1", "b2")',
    )
    assert declared_head(merged) == "m"


def test_what_the_scripts_do_not_settle_is_left_to_alembic(tmp_path: Path) -> None:
    two_heads = scripts(
        tmp_path / "two",
        'revision = "a"\ndown_revision = None',
        'revision = "b1"\ndown_revision = "a"',
        'revision = "b2"\ndown_revision = "a"',
    )
    computed = scripts(
        tmp_path / "computed", 'revision = "a"\ndown_revision = None', 'revision = "b" + "x"'
    )
    assert declared_head(two_heads) is UNSETTLED
    assert declared_head(computed) is UNSETTLED
    assert declared_head(scripts(tmp_path / "none")) is UNSETTLED
