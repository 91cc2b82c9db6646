"""Which files are already loaded: the source batches, by content hash."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from etl.db.models import SourceBatch


def batch_already_loaded(conn: Connection, sha256: str) -> bool:
    query = select(func.count()).where(SourceBatch.content_sha256 == sha256)
    return bool(conn.execute(query).scalar())
