"""Candle pages for the API, resampled server-side from stored bars and their rollups.

Resampling: a requested interval is served from the stored series (of the requested
source, if given) whose interval divides it and whose data is newest, the finest on a
tie. Buckets are aligned to the Unix epoch (UTC midnight for `1d`), except `1w`, whose
buckets start on Monday 00:00 UTC. A bucket's open is the open of its first stored bar,
its close the close of its last, high/low the extremes, volumes the sums; `bars` says how
many stored bars it holds. When the requested interval is the stored one,
bars are served as stored (Gemini's daily bars keep their 04:00 UTC open).

Reads are bounded: a page of interval I reads the coarsest of the stored bars and their
rollups (`candle_rollup`, kept by the loaders: `etl.load.rollups`) that divides I, in
index-ordered slices of at most (limit + 1) x I / that interval rows. Where the page's
start or end cuts a rollup bucket, that bucket's share comes from the stored bars.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, func, literal, select, type_coerce

from etl.core.intervals import (
    INTERVAL_MS,
    WEEK_ANCHOR_MS,
    anchor_for,
    bucket_open,
    serving_level,
)
from etl.db.models import Candle, CandleRollup, Metric
from etl.read.rows import RAW_OPEN_TIME, fetch_tuples

__all__ = ["WEEK_ANCHOR_MS", "anchor_for", "candle_page", "candle_span", "choose_series"]
VALUES = (Candle.open, Candle.high, Candle.low, Candle.close, Candle.volume, Candle.volume_quote)
ROLLUP_OPEN_TIME = type_coerce(CandleRollup.open_time, BigInteger)
ROLLUP_VALUES = (
    CandleRollup.open,
    CandleRollup.high,
    CandleRollup.low,
    CandleRollup.close,
    CandleRollup.volume,
    CandleRollup.volume_quote,
)
Unit = tuple[Any, ...]  # (open ms, open, high, low, close, volume, volume_quote, bars)


def choose_series(
    conn: Connection, asset_id: int, interval: str, source: str | None
) -> tuple[str, str] | None:
    """(source, stored interval) to serve `interval` from: among the stored series whose
    interval divides it, the one with the newest data; the finest on a tie."""
    step = INTERVAL_MS[interval]
    as_of = type_coerce(Metric.as_of, BigInteger)
    query = select(Metric.source, Metric.interval, as_of).where(Metric.asset_id == asset_id)
    if source is not None:
        query = query.where(Metric.source == source)
    newest: dict[tuple[str, str], int] = {}
    for src, stored, newest_ms in conn.execute(query).all():
        if stored in INTERVAL_MS and step % INTERVAL_MS[stored] == 0:
            key = (src, stored)
            newest[key] = max(newest.get(key, 0), int(newest_ms))
    if not newest:
        return None
    return min(newest, key=lambda k: (-newest[k], INTERVAL_MS[k[1]]))


def candle_page(
    conn: Connection,
    *,
    asset_id: int,
    source: str,
    stored: str,
    interval: str,
    start_ms: int,
    end_ms: int,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to `limit + 1` bars with open_time in [start, end), oldest first (the extra bar
    tells the caller there is a next page)."""
    step = INTERVAL_MS[interval]
    if stored == interval:
        where = _stored_where(asset_id, source, stored, start_ms, end_ms)
        rows = fetch_tuples(
            conn,
            select(RAW_OPEN_TIME, *VALUES).where(*where).order_by(RAW_OPEN_TIME).limit(limit + 1),
        )
        return [_bar(t, step, o, h, lo, c, v, vq, 1) for t, o, h, lo, c, v, vq in rows]
    series = _Series(conn, asset_id, source, stored, serving_level(stored, interval))
    slice_rows = (limit + 1) * (step // INTERVAL_MS[series.level])
    bars: list[dict[str, Any]] = []
    for bucket in _buckets(series.units(start_ms, end_ms, slice_rows), interval):
        bars.append(bucket)
        if len(bars) > limit:
            break
    return bars


def candle_span(
    conn: Connection,
    *,
    asset_id: int,
    source: str,
    stored: str,
    interval: str,
    start_ms: int,
    end_ms: int,
    at_most: int | None = None,
) -> tuple[int, int, int] | None:
    """(bars, first open ms, last open ms) that the pages of `candle_page` over [start, end)
    hold together, or None when there are none, so an export can refuse an oversized range
    before it streams a byte. With `at_most`, counting stops past it: a count above
    `at_most` means "more than `at_most`" (and the last open is the last counted), so the
    rows read stay bounded by the cap, never by the range."""
    step, anchor = INTERVAL_MS[interval], anchor_for(interval)
    as_stored = stored == interval
    level = stored if as_stored else serving_level(stored, interval)
    cap = None if at_most is None else at_most + 1
    total, first, last = 0, None, None
    for lo, hi, series in _Series(conn, asset_id, source, stored, level).segments(start_ms, end_ms):
        left = None if cap is None else cap - total
        found = series.count_buckets(lo, hi, step, anchor, as_stored=as_stored, cap=left)
        if found is None:
            continue
        count, low, high = found
        total += count - (1 if last is not None and low == last else 0)
        first = low if first is None else first
        last = high
        if cap is not None and total >= cap:
            break
    if first is None or last is None:
        return None
    if as_stored:  # the first and last bars' own opens
        return total, first, last
    return total, first * step + anchor, last * step + anchor


class _Series:
    """One stored series read at `level`: the stored bars themselves or their rollups."""

    def __init__(
        self, conn: Connection, asset_id: int, source: str, stored: str, level: str
    ) -> None:
        self.conn, self.asset_id, self.source = conn, asset_id, source
        self.stored, self.level = stored, level

    def at(self, level: str) -> _Series:
        return _Series(self.conn, self.asset_id, self.source, self.stored, level)

    def _select(self, lo: int, hi: int) -> tuple[ColumnElement[int], Any, tuple[Any, ...]]:
        """(open time, bars per row, where) of this level's rows in [lo, hi)."""
        if self.level == self.stored:
            where = _stored_where(self.asset_id, self.source, self.stored, lo, hi)
            return RAW_OPEN_TIME, literal(1), where
        return (
            ROLLUP_OPEN_TIME,
            CandleRollup.bars,
            (
                CandleRollup.asset_id == self.asset_id,
                CandleRollup.source == self.source,
                CandleRollup.base == self.stored,
                CandleRollup.interval == self.level,
                ROLLUP_OPEN_TIME.between(lo, hi - 1),
            ),
        )

    def segments(self, start_ms: int, end_ms: int) -> list[tuple[int, int, _Series]]:
        """[lo, hi) pieces of the range, oldest first, each with what it is read from: this
        level, or the stored bars where the range cuts a rollup bucket."""
        if self.level == self.stored:
            return [(start_ms, end_ms, self)]
        head = min(end_ms, _align_up(start_ms, self.level))
        tail = max(head, bucket_open(end_ms, self.level))
        stored = self.at(self.stored)
        pieces = [(start_ms, head, stored), (head, tail, self), (tail, end_ms, stored)]
        return [(lo, hi, series) for lo, hi, series in pieces if lo < hi]

    def units(self, start_ms: int, end_ms: int, slice_rows: int) -> Iterator[Unit]:
        """Bars in [start, end) as (open, values..., bars), oldest first, read at most
        `slice_rows` per statement, only as far as the caller consumes them."""
        for lo, hi, series in self.segments(start_ms, end_ms):
            if series is self:
                yield from self._read(lo, hi, slice_rows)
            else:  # the share of one rollup bucket that the range cuts: one summary
                summary = series._summary(lo, hi)
                if summary is not None:
                    yield summary

    def _summary(self, lo: int, hi: int) -> Unit | None:
        """This level's bars in [lo, hi) as one unit, aggregated by the database (as the
        full resampling does: SUM over the index range, in time order)."""
        open_time, _, where = self._select(lo, hi)
        first, last, high, low, volume, volume_quote, count = self.conn.execute(
            select(
                func.min(open_time),
                func.max(open_time),
                func.max(Candle.high),
                func.min(Candle.low),
                func.sum(Candle.volume),
                func.sum(Candle.volume_quote),
                func.count(),
            ).where(*where)
        ).one()
        if not count:
            return None
        edges = {
            int(t): (o, c)
            for t, o, c in self.conn.execute(
                select(open_time, Candle.open, Candle.close).where(
                    *where, open_time.in_([int(first), int(last)])
                )
            ).all()
        }
        opened, closed = edges[int(first)][0], edges[int(last)][1]
        return (int(first), opened, high, low, closed, volume, volume_quote, int(count))

    def _read(self, lo: int, hi: int, slice_rows: int) -> Iterator[Unit]:
        values = VALUES if self.level == self.stored else ROLLUP_VALUES
        while lo < hi:
            open_time, bars, where = self._select(lo, hi)
            query = select(open_time, *values, bars).where(*where).order_by(open_time)
            rows = fetch_tuples(self.conn, query.limit(slice_rows))
            yield from rows
            if len(rows) < slice_rows:
                return
            lo = int(rows[-1][0]) + 1

    def count_buckets(
        self, lo: int, hi: int, step: int, anchor: int, *, as_stored: bool, cap: int | None
    ) -> tuple[int, int, int] | None:
        """(how many `step` buckets this level's rows in [lo, hi) fall in, the first and
        last bucket numbers), or None when there are no rows; `as_stored`: each row is its
        own bucket, numbered by its open time. With `cap`, counting stops at `cap`
        buckets, each statement reading at most the rows that many buckets hold."""
        per_bucket = 1 if as_stored else max(1, step // INTERVAL_MS[self.level])
        total, first, last = 0, None, None
        while lo < hi:
            open_time, _, where = self._select(lo, hi)
            key = (
                open_time
                if as_stored
                else (open_time - literal(anchor, BigInteger)) // literal(step, BigInteger)
            )
            inner = select(key.label("k")).where(*where).order_by(open_time)
            if cap is not None:
                inner = inner.limit((cap - total) * per_bucket)
            sub = inner.subquery()
            count, low, high, rows = self.conn.execute(
                select(
                    func.count(sub.c.k.distinct()),
                    func.min(sub.c.k),
                    func.max(sub.c.k),
                    func.count(),
                )
            ).one()
            if not rows:
                break
            total += int(count) - (1 if last is not None and int(low) == last else 0)
            first = int(low) if first is None else first
            last = int(high)
            if cap is None or total >= cap or rows < (cap - total) * per_bucket:
                break
            # Rows denser than `per_bucket` per bucket (irregular stored times): go on from
            # the last bucket read, which may hold more rows.
            lo = last + 1 if as_stored else last * step + anchor
        return None if first is None or last is None else (total, first, last)


def _buckets(units: Iterator[Unit], interval: str) -> Iterator[dict[str, Any]]:
    """`interval` bars from time-ordered units (stored bars or rollups), each yielded once
    complete: open of the first, close of the last, high/low the extremes, volumes summed
    in order (None when every one is None, as SQL SUM), bars added up."""
    step, anchor = INTERVAL_MS[interval], anchor_for(interval)
    current: list[Any] | None = None
    for t, o, h, lo, c, v, vq, n in units:
        key = (int(t) - anchor) // step
        if current is not None and current[0] == key:
            current[2] = max(current[2], h)
            current[3] = min(current[3], lo)
            current[4] = c
            current[5] = _add(current[5], v)
            current[6] = _add(current[6], vq)
            current[7] += int(n)
            continue
        if current is not None:
            yield _bar(current[0] * step + anchor, step, *current[1:])
        current = [key, o, h, lo, c, v, vq, int(n)]
    if current is not None:
        yield _bar(current[0] * step + anchor, step, *current[1:])


def _add(total: float | None, value: float | None) -> float | None:
    if value is None:
        return total
    return value if total is None else total + value


def _stored_where(
    asset_id: int, source: str, stored: str, start_ms: int, end_ms: int
) -> tuple[Any, ...]:
    return (
        Candle.asset_id == asset_id,
        Candle.source == source,
        Candle.interval == stored,
        RAW_OPEN_TIME.between(start_ms, end_ms - 1),
    )


def _align_up(ms: int, interval: str) -> int:
    opened = bucket_open(ms, interval)
    return opened if opened == ms else opened + INTERVAL_MS[interval]


def _bar(
    open_ms: int,
    step: int,
    o: float,
    h: float,
    lo: float,
    c: float,
    volume: float | None,
    volume_quote: float | None,
    bars: int,
) -> dict[str, Any]:
    return {
        "open_time": int(open_ms),
        "close_time": int(open_ms) + step,
        "open": o,
        "high": h,
        "low": lo,
        "close": c,
        "volume": volume,
        "volume_quote": volume_quote,
        "bars": bars,
    }
