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
    rows = conn.execute(
        select(q, Asset.symbol)
        .join(Asset, Asset.id == q.c.asset_id)
        .where(q.c.id.in_(newest.scalar_subquery()))
        .order_by(Asset.symbol, q.c.source, q.c.interval)
    ).mappings().all()  # fmt: skip
    return [plain(r) for r in rows]


def list_runs(conn: Connection, limit: int) -> list[dict[str, Any]]:
    table = EtlRun.__table__
    rows = conn.execute(select(table).order_by(table.c.started_at.desc()).limit(limit))
    return [plain(r) for r in rows.mappings().all()]


def get_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    table = EtlRun.__table__
    row = conn.execute(select(table).where(table.c.id == run_id)).mappings().first()
    return plain(row) if row else None


def schema_ok(conn: Connection) -> bool:
    conn.execute(select(func.count()).select_from(EtlRun.__table__).limit(1))
    return True
