"""The run ledger and the per-run derived tables (metrics, quality reports)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from etl.core.log import SecretMask
from etl.core.series import SeriesKey
from etl.db.engine import is_sqlite
from etl.db.models import EtlRun, Metric, QualityReport

# The ledger is served by the API: what one run may store, per text and per error list.
MAX_STORED_TEXT = 2000
MAX_STORED_ERRORS = 50


def start_run(engine: Engine, *, run_id: str, trigger: str, now_ms: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(EtlRun).values(
                id=run_id, trigger=trigger, started_at=now_ms, status="running", sources={}
            )
        )


def report_run(
    engine: Engine, *, run_id: str, sources: dict[str, Any], secrets: Sequence[str] = ()
) -> None:
    """A running run's progress (a long-lived run's state), stored masked and bounded as
    `finish_run` stores its outcome."""
    mask = _mask(engine, secrets)
    with engine.begin() as conn:
        conn.execute(
            update(EtlRun)
            .where(EtlRun.id == run_id, EtlRun.finished_at.is_(None))
            .values(sources=stored(sources, mask))
        )


def finish_run(
    engine: Engine,
    *,
    run_id: str,
    status: str,
    sources: dict[str, Any],
    error: str | None,
    now_ms: int,
    secrets: Sequence[str] = (),
) -> tuple[dict[str, Any], str | None]:
    """The run's outcome, stored as the API will serve it: every text masked as logs mask it
    (`secrets`, the engine's own password, any URL's password) and bounded in size. Returns
    the sources and error as stored, for whatever reports the run elsewhere."""
    mask = _mask(engine, secrets)
    kept_sources = stored(sources, mask)
    kept_error = None if error is None else stored(error, mask)
    with engine.begin() as conn:
        conn.execute(
            update(EtlRun)
            .where(EtlRun.id == run_id)
            .values(status=status, sources=kept_sources, error=kept_error, finished_at=now_ms)
        )
    return kept_sources, kept_error


def _mask(engine: Engine, secrets: Sequence[str]) -> SecretMask:
    """Masks `secrets` and the engine's own password (values under 4 chars are no secret)."""
    return SecretMask([s for s in (*secrets, engine.url.password or "") if len(s) >= 4])


def stored(value: Any, mask: SecretMask) -> Any:
    """`value` with every string masked and cut to `MAX_STORED_TEXT`, and every `errors`
    list cut to `MAX_STORED_ERRORS` entries (plus one saying how many more there were)."""
    if isinstance(value, str):
        text = mask.clean(value)
        return text if len(text) <= MAX_STORED_TEXT else text[: MAX_STORED_TEXT - 1] + "…"
    if isinstance(value, dict):
        return {k: _stored_item(k, v, mask) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [stored(item, mask) for item in value]
    return value


def _stored_item(key: str, value: Any, mask: SecretMask) -> Any:
    if key == "errors" and isinstance(value, list) and len(value) > MAX_STORED_ERRORS:
        more = len(value) - MAX_STORED_ERRORS
        return stored([*value[:MAX_STORED_ERRORS], f"... and {more} more errors"], mask)
    return stored(value, mask)


def upsert_metric(
    conn: Connection, key: SeriesKey, values: dict[str, Any], *, run_id: str, now_ms: int
) -> None:
    asset_id, source, interval = key
    row = {
        **values,
        "asset_id": asset_id,
        "source": source,
        "interval": interval,
        "run_id": run_id,
        "computed_at": now_ms,
    }
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
            **report,
            run_id=run_id,
            asset_id=asset_id,
            source=source,
            interval=interval,
            computed_at=now_ms,
        )
    )
