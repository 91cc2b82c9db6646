"""Rollups: coarser bars of each stored series, kept in `candle_rollup` by the loaders, so
a candle page of any interval reads a bounded index range (`etl.read.candles`).

For a series stored at `base`, the levels kept are `etl.core.intervals.rollup_levels(base)`:
every API interval at least 6 stored bars long (for `1m`: `15m` up to `1w`; `3m` and `5m`
are read from the stored bars). Every writer of `candle` goes through `open_candle_writer`, which
wraps it in `RollupWriter`: the writer notes the open times each batch writes, and when the
batch's rows are written (`finish`), in the same transaction, the buckets of every level
that hold one of them are recomputed from the stored bars. The cost follows the batch: its
rows, plus the other stored bars of the buckets it touches (at most a week and a 3-day
bucket around a single minute bar), never the series.

A bucket is recomputed from the stored bars, not from its finer rollups: the volumes are
summed in time order, one bar after the other, as SQL `SUM` does over the index (today's
resampling), so a rollup equals that resampling to the last bit. Summing finer sums
instead would round differently.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import BigInteger, Connection, delete, func, select, type_coerce

from etl.core.intervals import INTERVAL_MS, anchor_for, rollup_levels
from etl.db.engine import is_sqlite
from etl.db.models import Candle, CandleRollup
from etl.load.pgcopy import Field, payload
from etl.load.protocol import VALUE_COLUMNS, CandleWriter, LoadCounts

ROLLUP_COLUMNS = (
    "asset_id",
    "source",
    "base",
    "interval",
    "open_time",
    *VALUE_COLUMNS,
    "bars",
)
_SQLITE_INSERT = (
    "INSERT INTO candle_rollup (asset_id, source, base, interval, open_time, open, high, "
    "low, close, volume, volume_quote, bars) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_PG_COPY_IN = (
    "COPY candle_rollup (" + ", ".join(ROLLUP_COLUMNS) + ") FROM STDIN WITH (FORMAT binary)"
)
# Stored bars read back per statement when recomputing (about): bounds memory.
SLAB_BARS = 200_000
_OPEN = type_coerce(Candle.open_time, BigInteger)
_ROLLUP_OPEN = type_coerce(CandleRollup.open_time, BigInteger)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Bars:
    """Stored bars of one series, oldest first; a NULL volume is NaN."""

    open_time: Ints
    values: Floats  # columns: VALUE_COLUMNS
    step: int  # the stored interval, ms

    def __len__(self) -> int:
        return len(self.open_time)


class RollupWriter:
    """A `CandleWriter` that keeps the rollups of what it writes: `add` notes the buckets
    each row falls in, `finish` writes the bars, then recomputes those buckets."""

    def __init__(self, inner: CandleWriter, conn: Connection, *, source: str, base: str) -> None:
        self.inner, self.conn = inner, conn
        self.counts: LoadCounts = inner.counts
        self.source, self.base = source, base
        self.levels = rollup_levels(base)
        self.touched: dict[int, list[Ints]] = {}  # asset id -> open times written

    def add(self, frame: pd.DataFrame) -> None:
        if self.levels and not frame.empty:
            times = frame["open_time"].to_numpy(np.int64)
            asset_ids = frame["asset_id"].to_numpy(np.int64)
            for asset_id in np.unique(asset_ids):
                self.touched.setdefault(int(asset_id), []).append(times[asset_ids == asset_id])
        self.inner.add(frame)

    def wait(self) -> None:
        self.inner.wait()

    def finish(self) -> LoadCounts:
        counts = self.counts = self.inner.finish()
        for asset_id, parts in sorted(self.touched.items()):
            times = np.concatenate(parts)
            touched = {level: np.unique(_bucket(times, level)) for level in self.levels}
            refresh(
                self.conn, asset_id=asset_id, source=self.source, base=self.base, touched=touched
            )
        self.touched.clear()
        return counts

    def close(self) -> None:
        self.inner.close()


def refresh(
    conn: Connection, *, asset_id: int, source: str, base: str, touched: dict[str, Ints]
) -> int:
    """Recompute from the stored bars the rollup buckets of one series that `touched`
    names (level -> sorted distinct bucket numbers); returns the rollup rows written."""
    levels = tuple(level for level in rollup_levels(base) if len(touched.get(level, ())))
    if not levels:
        return 0
    ranges = _merge(
        (_open(first, level), _open(last + 1, level))
        for level, ids in touched.items()
        for first, last in _runs(ids)
    )
    written = 0
    for lo, hi in _slabs(ranges, base, levels):
        bars = read_bars(conn, asset_id=asset_id, source=source, base=base, lo=lo, hi=hi)
        for level in levels:
            ids = touched[level]
            ids = ids[(_open(ids, level) >= lo) & (_open(ids, level) < hi)]
            if not len(ids):
                continue
            for first, last in _runs(ids):
                conn.execute(
                    delete(CandleRollup).where(
                        CandleRollup.asset_id == asset_id,
                        CandleRollup.source == source,
                        CandleRollup.base == base,
                        CandleRollup.interval == level,
                        _ROLLUP_OPEN.between(_open(first, level), _open(last + 1, level) - 1),
                    )
                )
            opens, values, counts = aggregate(bars, level)
            keep = np.isin(_bucket(opens, level), ids)
            _insert(conn, asset_id, source, base, level, (opens[keep], values[keep], counts[keep]))
            written += int(keep.sum())
    return written


def rebuild(conn: Connection) -> int:
    """Recompute the rollups of every stored series (the migration that introduced them
    runs this over the bars already loaded); returns the rollup rows written."""
    written = 0
    series = conn.execute(select(Candle.asset_id, Candle.source, Candle.interval).distinct()).all()
    for asset_id, source, base in series:
        if base not in INTERVAL_MS or not rollup_levels(base):
            continue
        first, last = conn.execute(
            select(func.min(_OPEN), func.max(_OPEN)).where(
                Candle.asset_id == asset_id, Candle.source == source, Candle.interval == base
            )
        ).one()
        touched = {
            level: np.arange(
                (int(first) - anchor_for(level)) // INTERVAL_MS[level],
                (int(last) - anchor_for(level)) // INTERVAL_MS[level] + 1,
                dtype=np.int64,
            )
            for level in rollup_levels(base)
        }
        written += refresh(conn, asset_id=asset_id, source=source, base=base, touched=touched)
    return written


def _bucket(times: Ints, level: str) -> Ints:
    return (times - anchor_for(level)) // INTERVAL_MS[level]


def _open(bucket: Any, level: str) -> Any:
    return bucket * INTERVAL_MS[level] + anchor_for(level)


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching [lo, hi) ranges merged, in order."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((int(lo), int(hi)))
    return merged


def _slabs(
    ranges: list[tuple[int, int]], base: str, levels: tuple[str, ...]
) -> Iterator[tuple[int, int]]:
    """The ranges cut into slabs of about `SLAB_BARS` stored bars, only where every level's
    buckets begin (no bucket is split between two slabs)."""
    step, anchor = _cover(levels)
    size = max(1, SLAB_BARS * INTERVAL_MS[base] // step) * step
    for lo, hi in ranges:
        cut = lo
        while cut < hi:
            boundary = ((cut - anchor) // size + 1) * size + anchor
            yield cut, min(hi, boundary)
            cut = min(hi, boundary)


@cache
def _cover(levels: tuple[str, ...]) -> tuple[int, int]:
    """(length, anchor) of the shortest period whose starts begin a bucket of every level
    (3 days and Monday weeks: 21 days from 1970-01-19)."""
    step = math.lcm(*(INTERVAL_MS[level] for level in levels))
    coarsest = max(levels, key=lambda level: INTERVAL_MS[level])
    for k in range(step // INTERVAL_MS[coarsest]):
        start = anchor_for(coarsest) + k * INTERVAL_MS[coarsest]
        if all((start - anchor_for(level)) % INTERVAL_MS[level] == 0 for level in levels):
            return step, start
    raise ValueError(f"no common bucket start for {levels}")


def read_bars(conn: Connection, *, asset_id: int, source: str, base: str, lo: int, hi: int) -> Bars:
    """The stored bars of one series with open_time in [lo, hi), oldest first."""
    step = INTERVAL_MS[base]
    if is_sqlite(conn):
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(
                "SELECT open_time, open, high, low, close, volume, volume_quote FROM candle "
                "WHERE asset_id = ? AND source = ? AND interval = ? AND open_time >= ? "
                "AND open_time < ? ORDER BY open_time",
                (asset_id, source, base, lo, hi),
            )
            rows = cursor.fetchall()
        finally:
            cursor.close()
        if not rows:
            return Bars(np.empty(0, np.int64), np.empty((0, len(VALUE_COLUMNS))), step)
        table = np.array(rows, dtype=np.float64)  # None -> NaN
        times = np.array([r[0] for r in rows], dtype=np.int64)
        return Bars(times, table[:, 1:], step)
    return _read_bars_copy(conn, asset_id, source, base, lo, hi)


_PG_ROW = np.dtype(
    [("n", ">i2"), ("lt", ">i4"), ("t", ">i8")]
    + [
        (f"{p}{i}", f">{k}")
        for i in range(len(VALUE_COLUMNS))
        for p, k in (("l", "i4"), ("v", "f8"))
    ]
)
# COPY takes no parameters: the values are bound into the query by the driver (mogrify).
_PG_BARS = (
    "SELECT open_time, open, high, low, close, coalesce(volume, 'NaN'::float8), "
    "coalesce(volume_quote, 'NaN'::float8) FROM candle WHERE asset_id = %s AND source = %s "
    "AND interval = %s AND open_time >= %s AND open_time < %s ORDER BY open_time"
)
_PG_HEADER = 19  # signature (11) + flags (4) + extension length (4)


def _read_bars_copy(
    conn: Connection, asset_id: int, source: str, base: str, lo: int, hi: int
) -> Bars:
    """PostgreSQL: binary COPY out, every field fixed-width (NULL volumes as NaN), read
    with one NumPy structured view instead of a Python tuple per row."""
    raw = conn.connection.dbapi_connection
    cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        query = cursor.mogrify(_PG_BARS, (asset_id, source, base, lo, hi)).decode()
        buffer = io.BytesIO()
        cursor.copy_expert("COPY (" + query + ") TO STDOUT WITH (FORMAT binary)", buffer)
    finally:
        cursor.close()
    data = buffer.getvalue()
    count = (len(data) - _PG_HEADER - 2) // _PG_ROW.itemsize
    rows = np.frombuffer(data, dtype=_PG_ROW, count=count, offset=_PG_HEADER)
    values_out = (
        np.column_stack([rows[f"v{i}"].astype(np.float64) for i in range(len(VALUE_COLUMNS))])
        if count
        else np.empty((0, len(VALUE_COLUMNS)))
    )
    return Bars(rows["t"].astype(np.int64), values_out, INTERVAL_MS[base])


def _slots(bars: Bars, bucket: Ints, level: str) -> tuple[Ints | None, int]:
    step = bars.step
    width = -(-INTERVAL_MS[level] // step)
    slots = (bars.open_time - (bucket * INTERVAL_MS[level] + anchor_for(level))) // step
    distinct = bool(np.all(np.diff(slots)[np.diff(bucket) == 0] > 0))
    return (slots, width) if distinct and len(slots) and slots.max() < width else (None, 0)


def aggregate(bars: Bars, level: str) -> tuple[Ints, Floats, Ints]:
    """`level` buckets of `bars`: (open times, values as VALUE_COLUMNS, bars per bucket).
    Open of the first bar, close of the last, high/low the extremes, volumes summed in
    time order (NaN when every volume is NULL, as SQL SUM's NULL)."""
    if not len(bars):
        return np.empty(0, np.int64), np.empty((0, len(VALUE_COLUMNS))), np.empty(0, np.int64)
    step, anchor = INTERVAL_MS[level], anchor_for(level)
    bucket = (bars.open_time - anchor) // step
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(bucket)]
    v = bars.values
    out = np.empty((len(starts), len(VALUE_COLUMNS)))
    out[:, 0] = v[starts, 0]
    out[:, 1] = np.maximum.reduceat(v[:, 1], starts)
    out[:, 2] = np.minimum.reduceat(v[:, 2], starts)
    out[:, 3] = v[ends - 1, 3]
    # Each bar's place in its bucket, in stored bars: distinct (one bar per place) unless
    # the stored times are irregular, then the sums take the slower general path.
    slots, width = _slots(bars, bucket, level)
    for column in (4, 5):
        out[:, column] = sequential_sum(v[:, column], starts, ends, slots, width)
    return bucket[starts] * step + anchor, out, (ends - starts).astype(np.int64)


def sequential_sum(
    values: Floats, starts: Ints, ends: Ints, slots: Ints | None = None, width: int = 0
) -> Floats:
    """Per segment [start, end): the sum of the non-NaN values added one after the other
    in order (not NumPy's pairwise sum), NaN when there are none: SQL SUM's result.
    `slots` (each value's distinct place in its segment, below `width`) lets NumPy's
    running sum (`cumsum`, strictly sequential) do it on a segments x width grid, where
    the empty places are 0.0 (x + 0.0 == x: they change nothing)."""
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)  # a NULL adds nothing
    any_present = np.logical_or.reduceat(present, starts)
    if slots is not None:
        grid = np.zeros((len(starts), width))
        grid[np.repeat(np.arange(len(starts)), ends - starts), slots] = filled
        total = np.cumsum(grid, axis=1)[:, -1]
    else:
        lengths = ends - starts
        order = np.argsort(-lengths, kind="stable")  # longest first: live ones lead
        by_length = lengths[order]
        total = np.zeros(len(starts))
        for k in range(int(by_length[0])):
            live = order[: int(np.searchsorted(-by_length, -k, side="left"))]
            total[live] += filled[starts[live] + k]
    total[~any_present] = np.nan
    return total


def _insert(
    conn: Connection,
    asset_id: int,
    source: str,
    base: str,
    level: str,
    rows: tuple[Ints, Floats, Ints],
) -> None:
    times, values, counts = rows
    if not len(times):
        return
    if is_sqlite(conn):
        columns = [
            [asset_id] * len(times),
            [source] * len(times),
            [base] * len(times),
            [level] * len(times),
            times.tolist(),
            *(values[:, i].tolist() for i in range(len(VALUE_COLUMNS))),  # NaN -> NULL
            counts.tolist(),
        ]
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(_SQLITE_INSERT, list(zip(*columns, strict=True)))
        finally:
            cursor.close()
        return
    fields = [
        Field("int4", np.full(len(times), asset_id, np.int32)),
        Field("text", source),
        Field("text", base),
        Field("text", level),
        Field("int8", times),
        *(
            Field("float8", values[:, i], nullable=c.startswith("volume"))
            for i, c in enumerate(VALUE_COLUMNS)
        ),
        Field("int4", counts.astype(np.int32)),
    ]
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(_PG_COPY_IN, io.BytesIO(payload(len(times), fields)))
    finally:
        cursor.close()


def _runs(buckets: Ints) -> Iterator[tuple[int, int]]:
    """Consecutive runs of sorted, distinct bucket numbers, as (first, last)."""
    if not len(buckets):
        return
    breaks = np.flatnonzero(np.diff(buckets) != 1)
    firsts = np.r_[buckets[0], buckets[breaks + 1]]
    lasts = np.r_[buckets[breaks], buckets[-1]]
    yield from zip(firsts.tolist(), lasts.tolist(), strict=True)
