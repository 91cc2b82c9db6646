"""The load path: idempotent upserts of candles, one fast path per dialect.

- PostgreSQL: rows are streamed with binary `COPY` (built from NumPy arrays, no per-row
  Python) into a transaction-scoped staging table, then one
  `INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE <something changed>`.
- SQLite: the DB-API cursor's `executemany` of the same upsert, in the caller's
  `BEGIN IMMEDIATE` transaction.

Either way a row whose values did not change is not rewritten and is counted `unchanged`.
The caller owns the transaction (see `etl.db.write_transaction`).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, insert, select, text

from etl.assets import AssetRef
from etl.db import is_sqlite
from etl.intervals import interval_ms
from etl.models import Asset, Candle, RejectedRow, SourceBatch

VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "volume_quote")
_PG_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_PG_TRAILER = struct.pack(">h", -1)
_PG_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("l_asset", ">i4"),
        ("asset_id", ">i4"),
        ("l_time", ">i4"),
        ("open_time", ">i8"),
    ]
    + [item for name in VALUE_COLUMNS for item in ((f"l_{name}", ">i4"), (name, ">f8"))]
)


@dataclass
class LoadCounts:
    staged: int = 0
    inserted: int = 0
    updated: int = 0

    @property
    def unchanged(self) -> int:
        return self.staged - self.inserted - self.updated


def ensure_asset(conn: Connection, ref: AssetRef) -> int:
    """The asset's id, inserting it on first sight (callers hold the write lock)."""
    found = conn.execute(select(Asset.id).where(Asset.symbol == ref.symbol)).scalar()
    if found is not None:
        return int(found)
    values = {"symbol": ref.symbol, "base": ref.base, "quote": ref.quote, "name": ref.name}
    inserted = conn.execute(
        insert(Asset).values(**values, coin_id=ref.coin_id).returning(Asset.id)
    ).scalar_one()
    return int(inserted)


def batch_already_loaded(conn: Connection, sha256: str) -> bool:
    query = select(func.count()).where(SourceBatch.content_sha256 == sha256)
    return bool(conn.execute(query).scalar())


def insert_rejected(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(RejectedRow), rows)


def _upsert_sql(target_values: str, *, distinct: str) -> str:
    changed = " OR ".join(f"candle.{c} {distinct} excluded.{c}" for c in VALUE_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in (*VALUE_COLUMNS, "batch_id", "ingested_at"))
    columns = "asset_id, source, interval, open_time, close_time, " + ", ".join(VALUE_COLUMNS)
    return (
        f"INSERT INTO candle ({columns}, batch_id, ingested_at) {target_values} "
        f"ON CONFLICT (asset_id, source, interval, open_time) DO UPDATE SET {updates} "
        f"WHERE {changed}"
    )


class CandleWriter:
    """Streams validated rows of one (source, interval) batch into `candle`."""

    def __init__(
        self, conn: Connection, *, source: str, interval: str, batch_id: int, now_ms: int
    ) -> None:
        self.conn = conn
        self.params = {
            "source": source,
            "interval": interval,
            "interval_ms": interval_ms(interval),
            "batch_id": batch_id,
            "now": now_ms,
        }
        self.counts = LoadCounts()
        self._sqlite = is_sqlite(conn)
        if self._sqlite:
            self._rows_before = self._row_count()
            self._changes_before = self._dbapi().total_changes
        else:
            conn.exec_driver_sql(
                "CREATE TEMP TABLE candle_stage (asset_id int4, open_time int8, open float8, "
                "high float8, low float8, close float8, volume float8, volume_quote float8) "
                "ON COMMIT DROP"
            )

    def _dbapi(self) -> Any:
        return self.conn.connection.dbapi_connection

    def _row_count(self) -> int:
        return int(self.conn.execute(select(func.count()).select_from(Candle)).scalar_one())

    def add(self, frame: pd.DataFrame) -> None:
        """Stage rows with columns asset_id, open_time (epoch ms) and the values."""
        if frame.empty:
            return
        self.counts.staged += len(frame)
        if self._sqlite:
            self._add_sqlite(frame)
        else:
            self._add_postgres(frame)

    def _add_sqlite(self, frame: pd.DataFrame) -> None:
        p = self.params
        values = "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        sql = _upsert_sql(values, distinct="IS NOT")
        open_time = frame["open_time"].to_numpy(np.int64)
        columns = [
            frame["asset_id"].to_numpy(np.int64).tolist(),
            [p["source"]] * len(frame),
            [p["interval"]] * len(frame),
            open_time.tolist(),
            (open_time + p["interval_ms"]).tolist(),
            *(frame[c].to_numpy(np.float64).tolist() for c in VALUE_COLUMNS),  # NaN -> NULL
            [p["batch_id"]] * len(frame),
            [p["now"]] * len(frame),
        ]
        cursor = self._dbapi().cursor()
        try:
            cursor.executemany(sql, zip(*columns, strict=True))
        finally:
            cursor.close()

    def _add_postgres(self, frame: pd.DataFrame) -> None:
        rows = np.empty(len(frame), dtype=_PG_ROW)
        rows["fields"] = 2 + len(VALUE_COLUMNS)
        rows["l_asset"], rows["l_time"] = 4, 8
        rows["asset_id"] = frame["asset_id"].to_numpy(np.int32)
        rows["open_time"] = frame["open_time"].to_numpy(np.int64)
        for name in VALUE_COLUMNS:
            rows[f"l_{name}"] = 8
            rows[name] = frame[name].to_numpy(np.float64)
        payload = io.BytesIO(_PG_HEADER + rows.tobytes() + _PG_TRAILER)
        cursor = self._dbapi().cursor()
        try:
            cursor.copy_expert("COPY candle_stage FROM STDIN WITH (FORMAT binary)", payload)
        finally:
            cursor.close()

    def finish(self) -> LoadCounts:
        """Apply the staged rows; returns inserted / updated / unchanged counts."""
        if self._sqlite:
            changed = self._dbapi().total_changes - self._changes_before
            self.counts.inserted = self._row_count() - self._rows_before
            self.counts.updated = changed - self.counts.inserted
            return self.counts
        if not self.counts.staged:
            return self.counts
        select_staged = (
            "SELECT asset_id, :source, :interval, open_time, open_time + :interval_ms, "
            "open, high, low, close, NULLIF(volume, 'NaN'), NULLIF(volume_quote, 'NaN'), "
            ":batch_id, :now FROM candle_stage"
        )
        upsert = _upsert_sql(select_staged, distinct="IS DISTINCT FROM")
        row = self.conn.execute(
            text(
                f"WITH upserted AS ({upsert} RETURNING (xmax = 0) AS fresh) "  # noqa: S608
                "SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) "
                "FROM upserted"
            ),
            self.params,
        ).one()
        self.counts.inserted, self.counts.updated = int(row[0]), int(row[1])
        return self.counts
