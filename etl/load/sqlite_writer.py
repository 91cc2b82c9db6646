"""SQLite's candle writer: the DB-API cursor's `executemany` of
`INSERT ... ON CONFLICT DO UPDATE ... WHERE <something changed>` in the caller's
`BEGIN IMMEDIATE` transaction. Counts come from the connection's change counter and the
touched series' sizes (index ranges), never from counting the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select

from etl.db.models import Candle
from etl.load.protocol import CANDLE_COLUMNS, VALUE_COLUMNS, BatchTarget, LoadCounts

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
        self._series_before: dict[int, int] = {}  # bars per touched series, before

    def _series_count(self, asset_id: int) -> int:
        """Bars of one series (a range of the key index, not a scan of the table)."""
        query = select(func.count()).where(
            Candle.asset_id == asset_id,
            Candle.source == self.source,
            Candle.interval == self.interval,
        )
        return int(self.conn.execute(query).scalar_one())

    def add(self, frame: pd.DataFrame) -> None:
        """Write rows with columns asset_id, open_time (epoch ms) and the values."""
        if frame.empty:
            return
        self.counts.staged += len(frame)
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
        """Inserted = growth of the touched series; updated = the other changed rows."""
        changed = self._dbapi().total_changes - self._changes_before
        self.counts.inserted = sum(
            self._series_count(asset_id) - before
            for asset_id, before in self._series_before.items()
        )
        self.counts.updated = changed - self.counts.inserted
        return self.counts

    def wait(self) -> None:
        """Nothing runs beside the caller on SQLite."""

    def close(self) -> None:
        """Nothing to release on SQLite."""
