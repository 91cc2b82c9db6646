"""Small helpers shared by the tests (running the pipeline, reading tables back)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from etl.core.settings import Settings
from etl.pipeline import RunSummary, run_pipeline
from etl.sources.csv_files import ChunkHook, CsvSource


def run_csv(
    settings: Settings,
    engine: Engine,
    paths: Sequence[Path],
    *,
    on_chunk: ChunkHook | None = None,
    default_symbol: str | None = None,
) -> RunSummary:
    source = CsvSource(list(paths), default_symbol=default_symbol, on_chunk=on_chunk)
    return run_pipeline(settings, sources=[source], engine=engine, trigger="test")


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def file_detail(summary: RunSummary, name: str) -> dict[str, Any]:
    details: list[dict[str, Any]] = summary.sources["csv"]["details"]
    return next(d for d in details if Path(d["file"]).name == name)


def rows_read(plan: dict[str, Any], table: str) -> int:
    """Rows the plan's nodes on `table` returned, summed over loops (PostgreSQL's
    `EXPLAIN (ANALYZE, FORMAT JSON)` plan)."""
    own = plan["Actual Rows"] * plan["Actual Loops"] if plan.get("Relation Name") == table else 0
    return own + sum(rows_read(child, table) for child in plan.get("Plans", []))
