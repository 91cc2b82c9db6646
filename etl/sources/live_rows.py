"""What every live poll source does with what it fetched: one ticker snapshot, one window of
bars, each in its own transaction, validated and upserted like any other rows, bad rows
quarantined, counts added to the source's result. The Gemini source and the ccxt venues
share it, so a bar or a ticker means the same whoever fetched it.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, insert, select

from etl.core.assets import AssetRef
from etl.core.errors import GeminiError, VenueError
from etl.core.series import SeriesStats
from etl.db.models import Asset, Candle, SourceBatch
from etl.load.writer import (
    LoadCounts,
    ensure_asset,
    insert_ticker,
    load_transaction,
    open_candle_writer,
    quarantine,
)
from etl.read.rows import RAW_OPEN_TIME
from etl.sources.base import RunContext, SourceResult
from etl.transform.validate import ticker_problem, validate_candles

CANDLE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")


def bars_frame(rows: list[list[Any]]) -> pd.DataFrame:
    """Canonical candle columns from `[open ms, open, high, low, close, base volume]` rows,
    oldest first; a missing value is NaN (validation rejects the row)."""
    frame = pd.DataFrame(
        [[_float(v) for v in row[:6]] for row in rows], columns=list(CANDLE_COLUMNS)
    ).astype("float64")
    frame["volume_quote"] = float("nan")
    return frame.sort_values("open_time", kind="stable").reset_index(drop=True)


log = logging.getLogger(__name__)
T = TypeVar("T")


class CallLog:
    """One live source's calls to its exchange: counted, failures by kind, the last error;
    the run status that follows (every call failed: `failed`; some: `partial`) and the
    ledger detail that says so."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.failures: Counter[str] = Counter()
        self.last_error: str | None = None

    def call(self, fetch: Callable[[], T]) -> T:
        """`fetch()`, counted; an exchange failure is recorded, then raised."""
        self.calls += 1
        try:
            return fetch()
        except (GeminiError, VenueError) as exc:
            self.failures[exc.kind] += 1
            self.last_error = str(exc)
            log.warning("live call failed", extra={"source": self.name, "kind": exc.kind})
            raise

    def summarise(self, result: SourceResult, breaker: str) -> None:
        failed = sum(self.failures.values())
        if failed and failed >= self.calls:
            result.status = "failed"
        elif failed:
            result.status = "partial"
        if failed:
            result.errors.append(self.last_error or f"{self.name} failed")
        result.details.append(
            {
                "status": "calls",
                "calls": self.calls,
                "failures": dict(self.failures),
                "last_error": self.last_error,
                "breaker": breaker,
            }
        )


class LiveRows:
    """Stores one source's fetched rows into its `SourceResult`."""

    def __init__(self, ctx: RunContext, result: SourceResult, *, source: str, format: str):
        self.ctx, self.result = ctx, result
        self.source, self.format = source, format

    def store_ticker(
        self,
        asset: AssetRef,
        *,
        path: str,
        raw: Any,
        observed_at: int,
        bid: float | None,
        ask: float | None,
        last: float | None,
        volume_base_24h: float | None,
        volume_quote_24h: float | None,
    ) -> dict[str, Any]:
        problem = ticker_problem(bid, ask, last)
        self.result.read += 1
        with self.transaction() as conn:
            asset_id = ensure_asset(conn, asset)
            if problem:
                self.quarantine(conn, path, [(None, json.dumps(raw, default=str), problem)])
                return {"status": "rejected", "reason": problem}
            # A retried step stores the snapshot it already stored for that time once.
            written = insert_ticker(
                conn,
                asset_id=asset_id,
                source=self.source,
                observed_at=observed_at,
                bid=bid,
                ask=ask,
                last=last,
                volume_base_24h=volume_base_24h,
                volume_quote_24h=volume_quote_24h,
                raw=raw,
                run_id=self.ctx.run_id,
            )
        if not written:
            self.result.unchanged += 1
            return {"status": "unchanged", "last": last}
        self.result.inserted += 1
        return {"status": "loaded", "last": last}

    def store_candles(
        self, asset: AssetRef, interval: str, frame: pd.DataFrame, *, path: str
    ) -> dict[str, int]:
        """Validate and upsert one window of bars, from the series' newest stored bar on
        (it may have grown since); returns the window's counts."""
        frame = frame.copy()
        frame["line"] = np.arange(1, len(frame) + 1)  # position in the (sorted) response
        frame["parse_error"] = None
        with self.transaction() as conn:
            asset_id = ensure_asset(conn, asset)
            frame["asset_id"] = float(asset_id)
            newest = newest_open(conn, asset_id, self.source, interval)
            if newest is not None:
                frame = frame[frame["open_time"] >= newest]
            checked = validate_candles(
                frame,
                now_ms=self.ctx.now_ms,
                future_tolerance_ms=self.ctx.settings.future_tolerance_seconds * 1000,
            )
            batch_id = self._record_batch(conn, path, len(frame), len(checked.rejected))
            writer = open_candle_writer(
                conn,
                source=self.source,
                interval=interval,
                batch_id=batch_id,
                now_ms=self.ctx.now_ms,
            )
            try:
                writer.add(checked.valid)
                counts = writer.finish()
            finally:
                writer.close()
            by_line = frame.set_index("line")
            rejected = checked.rejected
            self.quarantine(
                conn,
                path,
                [
                    (int(line), _raw_candle(by_line.loc[line]), reason)
                    for line, reason in zip(rejected["line"], rejected["reason"], strict=True)
                ],
            )
        self._count(asset_id, interval, len(frame), rejected["code"].tolist(), counts)
        return {
            "read": len(frame),
            "inserted": counts.inserted,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
            "rejected": len(rejected),
        }

    def transaction(self) -> AbstractContextManager[Connection]:
        return load_transaction(self.ctx.engine, self.source)

    def quarantine(
        self, conn: Connection, path: str, rows: list[tuple[int | None, str, str]]
    ) -> None:
        self.result.rejected += quarantine(
            conn,
            rows,
            run_id=self.ctx.run_id,
            source=self.source,
            file=path,
            now_ms=self.ctx.now_ms,
        )

    def _record_batch(self, conn: Connection, path: str, read: int, rejected: int) -> int:
        return int(
            conn.execute(
                insert(SourceBatch)
                .values(
                    run_id=self.ctx.run_id,
                    kind=self.source,
                    ref=path,
                    content_sha256=None,
                    format=self.format,
                    rows_read=read,
                    rows_rejected=rejected,
                    created_at=self.ctx.now_ms,
                )
                .returning(SourceBatch.id)
            ).scalar_one()
        )

    def _count(
        self, asset_id: int, interval: str, read: int, reasons: list[str], counts: LoadCounts
    ) -> None:
        stats = self.result.series.setdefault((asset_id, self.source, interval), SeriesStats())
        stats.rows += read
        stats.required_cells += read * 6
        stats.rejected.update(reasons)
        self.result.read += read
        self.result.inserted += counts.inserted
        self.result.updated += counts.updated
        self.result.unchanged += counts.unchanged


def newest_open(conn: Connection, asset_id: int, source: str, interval: str) -> int | None:
    """The newest stored bar's open time of this series."""
    newest = conn.execute(
        select(func.max(RAW_OPEN_TIME)).where(
            Candle.asset_id == asset_id, Candle.source == source, Candle.interval == interval
        )
    ).scalar()
    return None if newest is None else int(newest)


def newest_stored_open(conn: Connection, asset: AssetRef, source: str, interval: str) -> int | None:
    """`newest_open` by the asset's symbol (None before its first row): a read only."""
    newest = conn.execute(
        select(func.max(RAW_OPEN_TIME))
        .join(Asset, Asset.id == Candle.asset_id)
        .where(Asset.symbol == asset.symbol, Candle.source == source, Candle.interval == interval)
    ).scalar()
    return None if newest is None else int(newest)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _raw_candle(row: pd.Series) -> str:
    values = [row[c] for c in CANDLE_COLUMNS]
    cells = [None if pd.isna(v) else v for v in values]
    if cells[0] is not None:
        cells[0] = int(cells[0])
    return json.dumps(cells)
