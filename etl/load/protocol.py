"""What every candle writer shares: the columns, the counts, and the one interface
(`CandleWriter`) that the sources write through, whatever the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd
from sqlalchemy import Connection

from etl.core.intervals import interval_ms

VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "volume_quote")
CANDLE_COLUMNS = (
    "asset_id",
    "source",
    "interval",
    "open_time",
    "close_time",
    *VALUE_COLUMNS,
    "batch_id",
    "ingested_at",
)


@dataclass
class LoadCounts:
    staged: int = 0
    inserted: int = 0
    updated: int = 0

    @property
    def unchanged(self) -> int:
        return self.staged - self.inserted - self.updated


class CandleWriter(Protocol):
    """Streams validated rows of one (source, interval) batch into `candle`.

    `add` takes rows with columns asset_id, open_time (epoch ms) and the values; `wait`
    blocks until the connection is free for the caller's own statements; `finish` applies
    what is pending and returns the counts; `close` releases what `add` started and is
    called on every exit path before the transaction ends. The caller owns the
    transaction."""

    counts: LoadCounts

    def add(self, frame: pd.DataFrame) -> None: ...

    def wait(self) -> None: ...

    def finish(self) -> LoadCounts: ...

    def close(self) -> None: ...


class BatchTarget:
    """The (source, interval, batch) a writer writes, and the connection it writes on."""

    def __init__(
        self, conn: Connection, *, source: str, interval: str, batch_id: int, now_ms: int
    ) -> None:
        self.conn = conn
        self.source, self.interval, self.batch_id, self.now_ms = source, interval, batch_id, now_ms
        self.step_ms = interval_ms(interval)
        self.params: dict[str, object] = {
            "source": source,
            "interval": interval,
            "interval_ms": self.step_ms,
            "batch_id": batch_id,
            "now": now_ms,
        }
        self.counts = LoadCounts()

    def _dbapi(self) -> Any:
        return self.conn.connection.dbapi_connection
