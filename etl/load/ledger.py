"""The run ledger and the per-run derived tables (metrics, quality reports)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from etl.core.series import SeriesKey
from etl.db.engine import is_sqlite
from etl.db.models import EtlRun, Metric, QualityReport


def start_run(engine: Engine, *, run_id: str, trigger: str, now_ms: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(EtlRun).values(
                id=run_id, trigger=trigger, started_at=now_ms, status="running", sources={}
            )
        )


def finish_run(
    engine: Engine,
    *,
    run_id: str,
    status: str,
    sources: dict[str, Any],
    error: str | None,
    now_ms: int,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(EtlRun)
            .where(EtlRun.id == run_id)
            .values(status=status, sources=sources, error=error, finished_at=now_ms)
        )


def upsert_metric(
    conn: Connection, key: SeriesKey, values: dict[str, Any], *, run_id: str, now_ms: int
) -> None:
    asset_id, source, interval = key
    row = {
        **values, "asset_id": asset_id, "source": source, "interval": interval,
        "run_id": run_id, "computed_at": now_ms,
    }  # fmt: skip
    dialect_insert = sqlite_insert if is_sqlite(conn) else pg_insert
    statement = dialect_insert(Metric).values(**row)
    keys = ("asset_id", "source", "interval", "as_of")
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={k: statement.excluded[k] for k in row if k not in keys},
        )
    )


def insert_quality(
    conn: Connection, key: SeriesKey, report: dict[str, Any], *, run_id: str, now_ms: int
) -> None:
    asset_id, source, interval = key
    conn.execute(
        insert(QualityReport).values(
            **report, run_id=run_id, asset_id=asset_id, source=source, interval=interval,
            computed_at=now_ms,
        )
    )  # fmt: skip
