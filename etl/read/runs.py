"""The run ledger and the quality reports, as the API lists them."""

from __future__ import annotations

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


def list_runs(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """The newest runs, each source reduced to its status, counts and number of errors: the
    per-file details and error messages stay with the one run (`get_run`), so a list of
    runs stays small however many files a run read."""
    table = EtlRun.__table__
    rows = conn.execute(select(table).order_by(table.c.started_at.desc()).limit(limit))
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
