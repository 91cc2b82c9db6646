"""The load path of price points (`price_point`): an upsert keyed on (asset, source, day),
the same on both databases. Files of daily snapshots are small (a coin's whole history is a
few thousand rows), so this compares with the stored rows of the touched range and writes
only what is new or changed; an unchanged row is counted, not rewritten."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from sqlalchemy import Connection, and_, bindparam, insert, select, type_coerce, update
from sqlalchemy.types import BigInteger

from etl.db.models import PricePoint
from etl.load.protocol import LoadCounts

_VALUES = ("price", "market_cap", "volume_quote_24h")
_WRITTEN = ("observed_at", *_VALUES, "batch_id", "ingested_at")
_DAY = type_coerce(PricePoint.day, BigInteger)
_OBSERVED = type_coerce(PricePoint.observed_at, BigInteger)


def _value(number: Any) -> float | None:
    value = float(number)
    return None if math.isnan(value) else value


class PricePointWriter:
    """Follows `etl.load.protocol.CandleWriter`, so a source writes through either alike."""

    def __init__(self, conn: Connection, *, source: str, batch_id: int, now_ms: int) -> None:
        self.conn, self.source, self.batch_id, self.now_ms = conn, source, batch_id, now_ms
        self.counts = LoadCounts()

    def add(self, frame: pd.DataFrame) -> None:
        """Rows with asset_id, open_time (the day), observed_at, close (the price),
        market_cap and volume_quote."""
        if frame.empty:
            return
        self.counts.staged += len(frame)
        for asset_id, rows in frame.groupby("asset_id"):
            self._write(int(str(asset_id)), rows)

    def _write(self, asset_id: int, rows: pd.DataFrame) -> None:
        days = rows["open_time"].astype("int64")
        stored = {
            int(day): (int(observed), *values)
            for day, observed, *values in self.conn.execute(
                select(_DAY, _OBSERVED, *(getattr(PricePoint, c) for c in _VALUES)).where(
                    PricePoint.asset_id == asset_id,
                    PricePoint.source == self.source,
                    _DAY.between(int(days.min()), int(days.max())),
                )
            ).all()
        }
        new, changed = [], []
        for day, observed, price, cap, volume in zip(
            days,
            rows["observed_at"].astype("int64"),
            rows["close"],
            rows["market_cap"],
            rows["volume_quote"],
            strict=True,
        ):
            values = (int(observed), _value(price), _value(cap), _value(volume))
            row = dict(zip(_WRITTEN, (*values, self.batch_id, self.now_ms), strict=True))
            if int(day) not in stored:
                new.append({"asset_id": asset_id, "source": self.source, "day": int(day), **row})
            elif stored[int(day)] != values:
                changed.append({"b_day": int(day), **{f"v_{c}": v for c, v in row.items()}})
        if new:
            self.conn.execute(insert(PricePoint), new)
        if changed:
            key = and_(
                PricePoint.asset_id == asset_id,
                PricePoint.source == self.source,
                PricePoint.day == bindparam("b_day"),
            )
            setting: dict[str, Any] = {c: bindparam(f"v_{c}") for c in _WRITTEN}
            self.conn.execute(update(PricePoint).where(key).values(setting), changed)
        self.counts.inserted += len(new)
        self.counts.updated += len(changed)

    def wait(self) -> None:
        """Statements run in the caller's connection, one at a time."""

    def finish(self) -> LoadCounts:
        return self.counts

    def close(self) -> None:
        """Nothing to release."""
