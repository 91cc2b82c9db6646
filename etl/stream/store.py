"""What the stream worker writes, each call one transaction (synchronous: the worker runs
these in a thread). Bars go through the same validation and upsert as every other load
(source `gemini`, interval `1m`); bars and messages that fail are quarantined in
`rejected_row` (source `gemini_ws`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select, update

from etl.core.assets import AssetRef
from etl.db.models import Candle, SourceBatch, StreamSession
from etl.load.writer import (
    ensure_asset,
    insert_ticker,
    load_transaction,
    open_candle_writer,
    quarantine,
)
from etl.read.rows import RAW_OPEN_TIME
from etl.stream.gemini_v2 import Bar
from etl.transform.validate import validate_candles

SOURCE = "gemini"
QUARANTINE_SOURCE = "gemini_ws"
INTERVAL = "1m"
MAX_RAW_CHARS = 2000  # a quarantined message is kept up to this size


@dataclass(frozen=True)
class TickerRow:
    asset_id: int
    observed_at: int
    bid: float | None
    ask: float | None
    last: float
    raw: dict[str, Any]


@dataclass
class Pending:
    """Everything one flush writes."""

    bars: dict[int, list[Bar]] = field(default_factory=dict)  # asset id -> bars
    tickers: list[TickerRow] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (reason, raw)

    def __bool__(self) -> bool:
        return bool(self.tickers or self.rejected or any(self.bars.values()))


class StreamStore:
    def __init__(self, engine: Engine, *, run_id: str, url: str, future_tolerance_ms: int) -> None:
        self.engine, self.run_id, self.url = engine, run_id, url
        self.future_tolerance_ms = future_tolerance_ms

    def asset_ids(self, refs: dict[str, AssetRef]) -> dict[str, int]:
        with load_transaction(self.engine, "stream") as conn:
            return {symbol: ensure_asset(conn, ref) for symbol, ref in refs.items()}

    def backfill(self, asset_id: int, bars: list[Bar], *, path: str, now_ms: int) -> int:
        """REST bars from the newest stored bar on (it may have grown); the count kept."""
        with load_transaction(self.engine, "stream backfill") as conn:
            newest = _newest_open(conn, asset_id)
            kept = [b for b in bars if newest is None or b.open_time >= newest]
            batch_id = self._batch(conn, path, "gemini_candles", now_ms)
            self._bars(conn, {asset_id: kept}, batch_id=batch_id, now_ms=now_ms)
        return len(kept)

    def open_session(self, now_ms: int) -> tuple[int, int]:
        """A session row and the source batch its live bars are recorded under."""
        with load_transaction(self.engine, "stream") as conn:
            session_id = conn.execute(
                insert(StreamSession)
                .values(
                    run_id=self.run_id, url=self.url, started_at=now_ms, messages=0, bad_messages=0
                )
                .returning(StreamSession.id)
            ).scalar_one()
            batch_id = self._batch(conn, self.url, "gemini_ws", now_ms)
        return int(session_id), batch_id

    def write(
        self, pending: Pending, *, batch_id: int, now_ms: int, session: dict[str, Any]
    ) -> None:
        """One flush: bars, tickers, quarantined messages and the session's counts."""
        with load_transaction(self.engine, "stream") as conn:
            self._bars(conn, pending.bars, batch_id=batch_id, now_ms=now_ms)
            self._tickers(conn, pending.tickers)
            self._quarantine(conn, pending.rejected, now_ms)
            self._session(conn, session)

    def close_session(self, session: dict[str, Any]) -> None:
        with load_transaction(self.engine, "stream") as conn:
            self._session(conn, session)

    # -- pieces of one transaction -----------------------------------------------------

    def _session(self, conn: Connection, session: dict[str, Any]) -> None:
        values = {k: v for k, v in session.items() if k != "id"}
        conn.execute(update(StreamSession).where(StreamSession.id == session["id"]).values(values))

    def _batch(self, conn: Connection, ref: str, kind: str, now_ms: int) -> int:
        batch_id = conn.execute(
            insert(SourceBatch)
            .values(
                run_id=self.run_id,
                kind=kind,
                ref=ref,
                content_sha256=None,
                format=kind,
                rows_read=0,
                rows_rejected=0,
                created_at=now_ms,
            )
            .returning(SourceBatch.id)
        ).scalar_one()
        return int(batch_id)

    def _bars(
        self, conn: Connection, bars: dict[int, list[Bar]], *, batch_id: int, now_ms: int
    ) -> None:
        rows = [(asset_id, bar) for asset_id, items in bars.items() for bar in items]
        if not rows:
            return
        frame = pd.DataFrame([{**asdict(bar), "asset_id": float(a)} for a, bar in rows])
        frame["open_time"] = frame["open_time"].astype(float)
        frame["volume_quote"] = float("nan")
        frame["line"] = np.arange(1, len(frame) + 1)
        frame["parse_error"] = None
        checked = validate_candles(
            frame, now_ms=now_ms, future_tolerance_ms=self.future_tolerance_ms
        )
        writer = open_candle_writer(
            conn, source=SOURCE, interval=INTERVAL, batch_id=batch_id, now_ms=now_ms
        )
        try:
            writer.add(checked.valid)
            writer.finish()
        finally:
            writer.close()
        bad = [
            (str(reason), json.dumps(asdict(rows[int(line) - 1][1])))
            for line, reason in zip(
                checked.rejected["line"], checked.rejected["reason"], strict=True
            )
        ]
        self._quarantine(conn, bad, now_ms)

    def _tickers(self, conn: Connection, tickers: list[TickerRow]) -> None:
        for row in tickers:
            insert_ticker(
                conn,
                asset_id=row.asset_id,
                source=SOURCE,
                observed_at=row.observed_at,
                bid=row.bid,
                ask=row.ask,
                last=row.last,
                raw=row.raw,
                run_id=self.run_id,
            )

    def _quarantine(self, conn: Connection, rejected: list[tuple[str, str]], now_ms: int) -> None:
        quarantine(
            conn,
            [(None, raw[:MAX_RAW_CHARS], reason) for reason, raw in rejected],
            run_id=self.run_id,
            source=QUARANTINE_SOURCE,
            file=self.url,
            now_ms=now_ms,
        )


def _newest_open(conn: Connection, asset_id: int) -> int | None:
    """The newest stored 1m bar's open time (the backfill starts there)."""
    newest = conn.execute(
        select(func.max(RAW_OPEN_TIME)).where(
            Candle.asset_id == asset_id, Candle.source == SOURCE, Candle.interval == INTERVAL
        )
    ).scalar()
    return None if newest is None else int(newest)
