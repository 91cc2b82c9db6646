"""SQLite's candle writer: the DB-API cursor's `executemany` of
`INSERT ... ON CONFLICT DO UPDATE ... WHERE <something changed>` in the caller's
`BEGIN IMMEDIATE` transaction. Counts come from the connection's change counter and the
bars the batch added to its series (`etl.load.series_stats`, which keeps them), never from
counting the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from etl.load.protocol import CANDLE_COLUMNS, VALUE_COLUMNS, BatchTarget, LoadCounts
from etl.load.series_stats import SeriesStatsTracker

_UPDATED = (*VALUE_COLUMNS, "batch_id", "ingested_at")
_KEY = ("asset_id", "source", "interval", "open_time")
SQLITE_UPSERT = (
    f"INSERT INTO candle ({', '.join(CANDLE_COLUMNS)}) VALUES ({', '.join('?' * 13)}) "
    f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _UPDATED)
    + " WHERE "
    + " OR ".join(f"candle.{c} IS NOT excluded.{c}" for c in VALUE_COLUMNS)
)


class SqliteCandleWriter(BatchTarget):
    def __init__(
        self, conn: Connection, *, source: str, interval: str, batch_id: int, now_ms: int
    ) -> None:
        super().__init__(conn, source=source, interval=interval, batch_id=batch_id, now_ms=now_ms)
        self._changes_before = self._dbapi().total_changes
        self.stats = SeriesStatsTracker(conn, source=source, interval=interval)

    def add(self, frame: pd.DataFrame) -> None:
        """Write rows with columns asset_id, open_time (epoch ms) and the values."""
        if frame.empty:
            return
        self.counts.staged += len(frame)
        self.stats.before_write(frame)
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
        """Inserted = growth of the touched series; updated = the other changed rows."""
        changed = self._dbapi().total_changes - self._changes_before  # before the stats' own
        self.counts.inserted = self.stats.finish()
        self.counts.updated = changed - self.counts.inserted
        return self.counts

    def wait(self) -> None:
        """Nothing runs beside the caller on SQLite."""

    def close(self) -> None:
        """Nothing to release on SQLite."""
