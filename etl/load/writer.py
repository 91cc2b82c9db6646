"""The load path: idempotent upserts of candles, one fast path per dialect.

`open_candle_writer` picks the dialect's writer (`etl.load.sqlite_writer`,
`etl.load.postgres_writer`); both follow `etl.load.protocol.CandleWriter`.

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

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from etl.core.assets import AssetRef
from etl.core.errors import LoadError
from etl.db.engine import is_sqlite, write_transaction
from etl.db.models import Asset, RejectedRow, Ticker
from etl.load.postgres_writer import PostgresCandleWriter
from etl.load.protocol import CandleWriter, LoadCounts
from etl.load.rollups import RollupWriter
from etl.load.sqlite_writer import SqliteCandleWriter

__all__ = ["CandleWriter", "LoadCounts", "open_candle_writer"]


def open_candle_writer(
    conn: Connection,
    *,
    source: str,
    interval: str,
    batch_id: int,
    now_ms: int,
    reader: Connection | None = None,
) -> CandleWriter:
    """The writer for `conn`'s database. `reader` (PostgreSQL only): a second connection
        that sees committed rows, so range look-ups need not wait for a COPY in flight. Whatever
    the database, the rollups of the bars written are kept in the same transaction
    (`etl.load.rollups`)."""
    writer: CandleWriter
    if is_sqlite(conn):
        writer = SqliteCandleWriter(
            conn, source=source, interval=interval, batch_id=batch_id, now_ms=now_ms
        )
    else:
        writer = PostgresCandleWriter(
            conn, source=source, interval=interval, batch_id=batch_id, now_ms=now_ms, reader=reader
        )
    return RollupWriter(writer, conn, source=source, base=interval)


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


def insert_rejected(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(RejectedRow), rows)


def quarantine(
    conn: Connection,
    rows: Iterable[tuple[int | None, str, str]],
    *,
    run_id: str,
    source: str,
    file: str,
    now_ms: int,
) -> int:
    """Quarantine `(line, raw, reason)` rows of one file or feed (the reason cut to its
    column's 255 characters); returns how many."""
    records = [
        {
            "run_id": run_id,
            "source": source,
            "file": file,
            "line": line,
            "raw": raw,
            "reason": reason[:255],
            "created_at": now_ms,
        }
        for line, raw, reason in rows
    ]
    insert_rejected(conn, records)
    return len(records)


def insert_ticker(conn: Connection, **values: Any) -> bool:
    """One ticker snapshot, idempotent on (asset, source, observed_at): a retried step or a
    repeated stream update writes it once. True when a row was written."""
    dialect_insert = sqlite_insert if is_sqlite(conn) else pg_insert
    statement = (
        dialect_insert(Ticker)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["asset_id", "source", "observed_at"])
    )
    return bool(conn.execute(statement).rowcount)
