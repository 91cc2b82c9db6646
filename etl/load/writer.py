"""The load path: idempotent upserts of candles, one fast path per dialect.

- PostgreSQL: rows are streamed with binary `COPY` (built from NumPy arrays, no per-row
  Python). A row whose time lies outside the range its series already held when the batch
  began cannot conflict, so it is copied straight into `candle`; the other rows go to a
  transaction-scoped staging table and are applied with one `UPDATE ... FROM` (only rows
  whose values changed) and one `INSERT ... WHERE NOT EXISTS`. Writers hold the load lock
  (`etl.db.engine.write_transaction`), so no other writer can slip a row in between.
- SQLite: the DB-API cursor's `executemany` of
  `INSERT ... ON CONFLICT DO UPDATE ... WHERE <something changed>` in the caller's
  `BEGIN IMMEDIATE` transaction.

Either way a row whose values did not change is not rewritten and is counted `unchanged`.
The caller owns the transaction.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from etl.core.assets import AssetRef
from etl.core.errors import LoadError
from etl.core.intervals import interval_ms
from etl.db.engine import is_sqlite, write_transaction
from etl.db.models import Asset, Candle, RejectedRow, SourceBatch
from etl.load.pgcopy import Field, payload

VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "volume_quote")
CANDLE_COLUMNS = (
    "asset_id", "source", "interval", "open_time", "close_time", *VALUE_COLUMNS, "batch_id",
    "ingested_at",
)  # fmt: skip


@dataclass
class LoadCounts:
    staged: int = 0
    inserted: int = 0
    updated: int = 0

    @property
    def unchanged(self) -> int:
        return self.staged - self.inserted - self.updated


def ensure_asset(conn: Connection, ref: AssetRef) -> int:
    """The asset's id, inserting it on first sight; safe when two runs race for it."""
    query = select(Asset.id).where(Asset.symbol == ref.symbol)
    found = conn.execute(query).scalar()
    if found is not None:
        return int(found)
    dialect_insert = sqlite_insert if is_sqlite(conn) else pg_insert
    values = {"symbol": ref.symbol, "base": ref.base, "quote": ref.quote, "name": ref.name}
    conn.execute(
        dialect_insert(Asset).values(**values, coin_id=ref.coin_id).on_conflict_do_nothing()
    )
    return int(conn.execute(query).scalar_one())


@contextmanager
def load_transaction(engine: Engine, label: str) -> Iterator[Connection]:
    """`write_transaction`, with a database failure raised as `LoadError` (it fails the run;
    the batch was rolled back whole)."""
    try:
        with write_transaction(engine) as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise LoadError(f"{label}: load rolled back: {exc}") from exc


def batch_already_loaded(conn: Connection, sha256: str) -> bool:
    query = select(func.count()).where(SourceBatch.content_sha256 == sha256)
    return bool(conn.execute(query).scalar())


def insert_rejected(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(RejectedRow), rows)


_UPDATED = (*VALUE_COLUMNS, "batch_id", "ingested_at")
_KEY = ("asset_id", "source", "interval", "open_time")
SQLITE_UPSERT = (
    f"INSERT INTO candle ({', '.join(CANDLE_COLUMNS)}) VALUES ({', '.join('?' * 13)}) "
    f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _UPDATED)
    + " WHERE "
    + " OR ".join(f"candle.{c} IS NOT excluded.{c}" for c in VALUE_COLUMNS)
)
_STAGE_KEY = (
    "c.asset_id = s.asset_id AND c.source = :source AND c.interval = :interval "
    "AND c.open_time = s.open_time"
)
# The statements below are assembled from the constant column names above, never from
# input; every value travels as a bound parameter.
PG_UPDATE_STAGED = (
    "UPDATE candle c SET "
    + ", ".join(f"{col} = s.{col}" for col in VALUE_COLUMNS)
    + ", batch_id = :batch_id, ingested_at = :now FROM candle_stage s WHERE "
    + _STAGE_KEY
    + " AND ("
    + " OR ".join(f"c.{col} IS DISTINCT FROM s.{col}" for col in VALUE_COLUMNS)
    + ")"
)
PG_INSERT_STAGED = (
    f"INSERT INTO candle ({', '.join(CANDLE_COLUMNS)}) "
    "SELECT s.asset_id, :source, :interval, s.open_time, s.open_time + :interval_ms, "
    + ", ".join(f"s.{col}" for col in VALUE_COLUMNS)
    + ", :batch_id, :now FROM candle_stage s WHERE NOT EXISTS "
    f"(SELECT 1 FROM candle c WHERE {_STAGE_KEY})"
)


class CandleWriter:
    """Streams validated rows of one (source, interval) batch into `candle`."""

    def __init__(
        self,
        conn: Connection,
        *,
        source: str,
        interval: str,
        batch_id: int,
        now_ms: int,
        reader: Connection | None = None,
    ) -> None:
        """`reader` (PostgreSQL): a second connection that sees only committed rows, used
        to look up each series' stored range without waiting for the COPY in flight."""
        self.conn = conn
        self.reader = reader or conn
        self.source, self.interval, self.batch_id, self.now_ms = source, interval, batch_id, now_ms
        self.step_ms = interval_ms(interval)
        self.params: dict[str, object] = {
            "source": source,
            "interval": interval,
            "interval_ms": interval_ms(interval),
            "batch_id": batch_id,
            "now": now_ms,
        }
        self.counts = LoadCounts()
        self._sqlite = is_sqlite(conn)
        self._ranges: dict[int, tuple[int, int] | None] = {}
        self._staging = False
        # PostgreSQL: one COPY in flight on a worker thread while the caller prepares the
        # next chunk (psycopg2 releases the GIL while the server works). Every other use of
        # the connection waits for it first (`wait`).
        self._pending: Future[None] | None = None
        self._copier: ThreadPoolExecutor | None = None
        if self._sqlite:
            self._changes_before = self._dbapi().total_changes
            self._series_before: dict[int, int] = {}  # bars per touched series, before

    def _dbapi(self) -> Any:
        return self.conn.connection.dbapi_connection

    def _series_count(self, asset_id: int) -> int:
        """Bars of one series (a range of the key index, not a scan of the table)."""
        query = select(func.count()).where(
            Candle.asset_id == asset_id,
            Candle.source == self.source,
            Candle.interval == self.interval,
        )
        return int(self.conn.execute(query).scalar_one())

    def wait(self) -> None:
        """Block until the COPY in flight (if any) is done; raises its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Let the COPY in flight finish (its error is the caller's to report) and stop
        the worker; called on every exit path before the transaction ends."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.exception()
        if self._copier is not None:
            self._copier.shutdown(wait=True)
            self._copier = None

    def add(self, frame: pd.DataFrame) -> None:
        """Write rows with columns asset_id, open_time (epoch ms) and the values."""
        if frame.empty:
            return
        self.counts.staged += len(frame)
        if self._sqlite:
            self._add_sqlite(frame)
            return
        fresh = self._outside_stored_range(frame)
        if fresh.all():
            self._copy(frame, "candle", CANDLE_COLUMNS, full=True)
            self.counts.inserted += len(frame)
            return
        if fresh.any():
            self._copy(frame[fresh], "candle", CANDLE_COLUMNS, full=True)
            self.counts.inserted += int(fresh.sum())
        if not self._staging:
            self.wait()
            self.conn.exec_driver_sql(
                "CREATE TEMP TABLE candle_stage (asset_id int4, open_time int8, open float8, "
                "high float8, low float8, close float8, volume float8, volume_quote float8) "
                "ON COMMIT DROP"
            )
            self._staging = True
        stage_columns = ("asset_id", "open_time", *VALUE_COLUMNS)
        self._copy(frame[~fresh], "candle_stage", stage_columns, full=False)

    def _outside_stored_range(self, frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """Rows that cannot exist yet: outside their series' range before this batch."""
        asset_ids = frame["asset_id"].to_numpy(np.int64)
        times = frame["open_time"].to_numpy(np.int64)
        fresh = np.ones(len(frame), dtype=bool)
        for asset_id in np.unique(asset_ids):
            stored = self._stored_range(int(asset_id))
            if stored is not None:
                mine = asset_ids == asset_id
                fresh[mine] = (times[mine] < stored[0]) | (times[mine] > stored[1])
        return fresh

    def _stored_range(self, asset_id: int) -> tuple[int, int] | None:
        # Asked once per asset, before this batch wrote any of its rows for it.
        if asset_id not in self._ranges:
            query = text(
                "SELECT min(open_time), max(open_time) FROM candle WHERE asset_id = :a "
                "AND source = :source AND interval = :interval"
            )
            params = {"a": asset_id, **self.params}
            if self.reader is self.conn:
                self.wait()
                low, high = self.conn.execute(query, params).one()
            else:
                with self.reader.begin():
                    low, high = self.reader.execute(query, params).one()
            self._ranges[asset_id] = None if low is None else (int(low), int(high))
        return self._ranges[asset_id]

    def _copy(
        self, frame: pd.DataFrame, table: str, columns: tuple[str, ...], *, full: bool
    ) -> None:
        open_time = frame["open_time"].to_numpy(np.int64)
        fields = [
            Field("int4", frame["asset_id"].to_numpy(np.int32)),
            *([Field("text", self.source), Field("text", self.interval)] if full else []),
            Field("int8", open_time),
            *([Field("int8", open_time + self.step_ms)] if full else []),
            *(
                Field("float8", frame[c].to_numpy(np.float64), nullable=c.startswith("volume"))
                for c in VALUE_COLUMNS
            ),
            *([Field("int4", np.full(len(frame), self.batch_id, np.int32))] if full else []),
            *([Field("int8", np.full(len(frame), self.now_ms, np.int64))] if full else []),
        ]
        data = io.BytesIO(payload(len(frame), fields))
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT binary)"
        raw = self._dbapi()
        self.wait()
        if self._copier is None:
            self._copier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-copy")
        self._pending = self._copier.submit(_copy_in, raw, sql, data)

    def _add_sqlite(self, frame: pd.DataFrame) -> None:
        for asset_id in frame["asset_id"].unique():  # first sight: before any row is written
            if int(asset_id) not in self._series_before:
                self._series_before[int(asset_id)] = self._series_count(int(asset_id))
        open_time = frame["open_time"].to_numpy(np.int64)
        columns = [
            frame["asset_id"].to_numpy(np.int64).tolist(),
            [self.source] * len(frame),
            [self.interval] * len(frame),
            open_time.tolist(),
            (open_time + self.step_ms).tolist(),
            *(frame[c].to_numpy(np.float64).tolist() for c in VALUE_COLUMNS),  # NaN -> NULL
            [self.batch_id] * len(frame),
            [self.now_ms] * len(frame),
        ]
        cursor = self._dbapi().cursor()
        try:
            cursor.executemany(SQLITE_UPSERT, zip(*columns, strict=True))
        finally:
            cursor.close()

    def finish(self) -> LoadCounts:
        """Apply the staged rows; returns inserted / updated / unchanged counts."""
        if self._sqlite:
            changed = self._dbapi().total_changes - self._changes_before
            self.counts.inserted = sum(
                self._series_count(asset_id) - before
                for asset_id, before in self._series_before.items()
            )
            self.counts.updated = changed - self.counts.inserted
            return self.counts
        self.wait()
        self.close()
        if self._staging:
            updated = self.conn.execute(text(PG_UPDATE_STAGED), self.params).rowcount
            inserted = self.conn.execute(text(PG_INSERT_STAGED), self.params).rowcount
            self.counts.updated += updated
            self.counts.inserted += inserted
        return self.counts


def _copy_in(raw_connection: Any, sql: str, data: io.BytesIO) -> None:
    cursor = raw_connection.cursor()
    try:
        cursor.copy_expert(sql, data, size=1 << 20)
    finally:
        cursor.close()
