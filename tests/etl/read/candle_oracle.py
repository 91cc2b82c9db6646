"""Today's (before rollups) resampling, kept as the oracle that the rollup-backed reads
(`etl.read.candles`) are compared with: one GROUP BY over every stored bar in range, then
the first and last bars' prices by key. Exact by definition; it scans the whole range."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Connection, func, literal, select

from etl.core.intervals import INTERVAL_MS, anchor_for
from etl.db.models import Candle
from etl.read.rows import RAW_OPEN_TIME, fetch_tuples

VALUES = (Candle.open, Candle.high, Candle.low, Candle.close, Candle.volume, Candle.volume_quote)


def oracle_page(
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
    where = (
        Candle.asset_id == asset_id,
        Candle.source == source,
        Candle.interval == stored,
        RAW_OPEN_TIME.between(start_ms, end_ms - 1),
    )
    if stored == interval:
        rows = fetch_tuples(
            conn,
            select(RAW_OPEN_TIME, *VALUES).where(*where).order_by(RAW_OPEN_TIME).limit(limit + 1),
        )
        step = INTERVAL_MS[interval]
        return [_bar(t, step, o, h, lo, c, v, vq, 1) for t, o, h, lo, c, v, vq in rows]
    return _resampled(conn, where, interval, limit)


def oracle_span(
    conn: Connection,
    *,
    asset_id: int,
    source: str,
    stored: str,
    interval: str,
    start_ms: int,
    end_ms: int,
) -> tuple[int, int, int] | None:
    """(bars, first open ms, last open ms) that the pages of `oracle_page` over [start, end)
    hold together, or None when there are none: one index range scan, so an export can
    refuse an oversized range before it streams a byte."""
    where = (
        Candle.asset_id == asset_id,
        Candle.source == source,
        Candle.interval == stored,
        RAW_OPEN_TIME.between(start_ms, end_ms - 1),
    )
    step, anchor = INTERVAL_MS[interval], anchor_for(interval)
    if stored == interval:
        counted = func.count()
    else:
        bucket = (RAW_OPEN_TIME - literal(anchor, BigInteger)) // literal(step, BigInteger)
        counted = func.count(bucket.distinct())
    bars, first, last = conn.execute(
        select(counted, func.min(RAW_OPEN_TIME), func.max(RAW_OPEN_TIME)).where(*where)
    ).one()
    if not bars:
        return None
    if stored != interval:  # the buckets' opens, as candle_page returns them
        first = (int(first) - anchor) // step * step + anchor
        last = (int(last) - anchor) // step * step + anchor
    return int(bars), int(first), int(last)


def _resampled(
    conn: Connection, where: tuple[Any, ...], interval: str, limit: int
) -> list[dict[str, Any]]:
    step, anchor = INTERVAL_MS[interval], anchor_for(interval)
    bucket = ((RAW_OPEN_TIME - literal(anchor, BigInteger)) // literal(step, BigInteger)).label("b")
    groups = conn.execute(
        select(
            bucket,
            func.min(RAW_OPEN_TIME),
            func.max(RAW_OPEN_TIME),
            func.max(Candle.high),
            func.min(Candle.low),
            func.sum(Candle.volume),
            func.sum(Candle.volume_quote),
            func.count(),
        )
        .where(*where)
        .group_by(bucket)
        .order_by(bucket)
        .limit(limit + 1)
    ).all()
    if not groups:
        return []
    edges = {int(g[1]) for g in groups} | {int(g[2]) for g in groups}
    prices = {
        int(t): (o, c)
        for t, o, c in conn.execute(
            select(RAW_OPEN_TIME, Candle.open, Candle.close).where(
                *where,
                RAW_OPEN_TIME.in_(sorted(edges)),
            )
        ).all()
    }
    return [
        _bar(
            int(b) * step + anchor,
            step,
            prices[int(first)][0],
            high,
            low,
            prices[int(last)][1],
            volume,
            volume_quote,
            int(count),
        )
        for b, first, last, high, low, volume, volume_quote, count in groups
    ]


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
