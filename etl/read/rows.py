"""Row shapes shared by the read queries: epoch-ms timestamps, plain driver tuples."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, Select, type_coerce

from etl.core.clock import to_epoch_ms
from etl.db.models import Candle

RAW_OPEN_TIME = type_coerce(Candle.open_time, BigInteger)  # epoch ms, no datetime round trip


def plain(row: Any) -> dict[str, Any]:
    """A result mapping with every timestamp as epoch ms (the API's one representation)."""
    return {k: to_epoch_ms(v) if isinstance(v, datetime) else v for k, v in dict(row).items()}


def fetch_tuples(conn: Connection, query: Select[Any]) -> list[tuple[Any, ...]]:
    """Plain driver tuples for a Core select: for thousands of rows, SQLAlchemy's Row
    objects cost 3x the fetch itself. The statement is still compiled and bound by
    SQLAlchemy (no string-built SQL)."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = (
        compiled.params
        if conn.dialect.paramstyle in ("pyformat", "named")
        else tuple(compiled.params[name] for name in compiled.positiontup or ())
    )
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), params)
        return list(cursor.fetchall())
    finally:
        cursor.close()
