"""The run ledger and the quality reports, as the API lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from etl.db.models import Asset, EtlRun, QualityReport
from etl.read.rows import plain


def latest_quality(conn: Connection, asset_id: int | None = None) -> list[dict[str, Any]]:
    q = QualityReport.__table__
    newest = select(func.max(q.c.id)).group_by(q.c.asset_id, q.c.source, q.c.interval)
    if asset_id is not None:
        newest = newest.where(q.c.asset_id == asset_id)
    rows = (
        conn.execute(
            select(q, Asset.symbol)
            .join(Asset, Asset.id == q.c.asset_id)
            .where(q.c.id.in_(newest.scalar_subquery()))
            .order_by(Asset.symbol, q.c.source, q.c.interval)
        )
        .mappings()
        .all()
    )
    return [plain(r) for r in rows]


TOTALS = ("read", "inserted", "updated", "unchanged", "rejected")


STREAM_TRIGGER = "stream"  # the stream worker's long-lived run (etl.stream.worker)


def list_runs(conn: Connection, limit: int, *, batch_only: bool = False) -> list[dict[str, Any]]:
    """The newest runs, each source reduced to its status, counts and number of errors: the
    per-file details and error messages stay with the one run (`get_run`), so a list of
    runs stays small however many files a run read. `batch_only`: without the stream
    worker's runs (which stay `running` for as long as the worker does)."""
    table = EtlRun.__table__
    query = select(table).order_by(table.c.started_at.desc()).limit(limit)
    if batch_only:
        query = query.where(table.c.trigger != STREAM_TRIGGER)
    rows = conn.execute(query)
    runs = [plain(r) for r in rows.mappings().all()]
    for run in runs:
        run["sources"] = {name: source_totals(s) for name, s in (run["sources"] or {}).items()}
    return runs


def source_totals(source: dict[str, Any]) -> dict[str, Any]:
    totals = {name: int(source.get(name) or 0) for name in TOTALS}
    errors = len(source.get("errors") or [])
    return {"status": source.get("status"), **totals, "error_count": errors}


def get_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    table = EtlRun.__table__
    row = conn.execute(select(table).where(table.c.id == run_id)).mappings().first()
    return plain(row) if row else None


def schema_ok(conn: Connection) -> bool:
    conn.execute(select(func.count()).select_from(EtlRun.__table__).limit(1))
    return True


@dataclass(frozen=True)
class StreamReport:
    """The stream worker's state as its run row last recorded it.

    `state`: `connected`; `disconnected` (running, reconnecting); `stopped` (the run
    ended); `unresponsive` (running, but no report for three report periods and 5 s: the
    process is gone or stuck)."""

    run_id: str
    state: str
    connected: bool
    since_ms: int | None
    last_message_ms: int | None
    messages: int
    bad_messages: int
    reconnects: int
    last_error: str | None
    reported_ms: int | None


def stream_report(conn: Connection, now_ms: int) -> StreamReport | None:
    """The newest stream worker run's state; None when no worker ever ran here."""
    table = EtlRun.__table__
    row = (
        conn.execute(
            select(table.c.id, table.c.finished_at, table.c.sources)
            .where(table.c.trigger == STREAM_TRIGGER)
            .order_by(table.c.started_at.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    got = plain(row)
    report: dict[str, Any] = (got["sources"] or {}).get("stream") or {}
    reported = _int(report.get("reported_ms"))
    every = _int(report.get("report_every_ms")) or 5_000
    connected = bool(report.get("connected")) and got["finished_at"] is None
    if got["finished_at"] is not None:
        state = "stopped"
    elif reported is None or now_ms - reported > 3 * every + 5_000:
        state, connected = "unresponsive", False
    else:
        state = "connected" if connected else "disconnected"
    return StreamReport(
        run_id=str(got["id"]),
        state=state,
        connected=connected,
        since_ms=_int(report.get("since_ms")) if connected else None,
        last_message_ms=_int(report.get("last_message_ms")),
        messages=_int(report.get("messages")) or 0,
        bad_messages=_int(report.get("bad_messages")) or 0,
        reconnects=_int(report.get("reconnects")) or 0,
        last_error=report.get("last_error"),
        reported_ms=reported,
    )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
