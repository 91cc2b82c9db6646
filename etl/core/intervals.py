"""Bar intervals: names, durations, and inference from a file's name (from its timestamps:
`etl.transform.bar_interval`)."""

from __future__ import annotations

import re

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

INTERVAL_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
}
_BY_MS = {ms: name for name, ms in INTERVAL_MS.items()}

WEEK_ANCHOR_MS = 4 * DAY_MS  # 1970-01-05, a Monday: weekly buckets start Monday 00:00 UTC
# An interval at most this many stored bars long is resampled from them at read time;
# every longer one is kept as a rollup of the stored series (`candle_rollup`).
ROLLUP_MIN_BARS = 6


def anchor_for(interval: str) -> int:
    """Where `interval`'s buckets are anchored: Monday 00:00 UTC for `1w`, else the epoch."""
    return WEEK_ANCHOR_MS if interval == "1w" else 0


def bucket_open(open_ms: int, interval: str) -> int:
    """The open of the `interval` bucket that holds `open_ms`."""
    step, anchor = INTERVAL_MS[interval], anchor_for(interval)
    return (open_ms - anchor) // step * step + anchor


def rollup_levels(stored: str) -> tuple[str, ...]:
    """The rollups kept for a series stored at `stored`, finest first: every API interval
    that is a multiple of it, at least `ROLLUP_MIN_BARS` stored bars long."""
    step = INTERVAL_MS[stored]
    return tuple(
        name for name, ms in INTERVAL_MS.items() if ms % step == 0 and ms // step >= ROLLUP_MIN_BARS
    )


def serving_level(stored: str, interval: str) -> str:
    """What a page of `interval` is read from: its own rollup when one is kept, else the
    stored bars (then at most `ROLLUP_MIN_BARS - 1` of them per bar)."""
    return interval if interval in rollup_levels(stored) else stored


_NAME_HINTS: dict[str, str] = {
    "d": "1d",
    "1d": "1d",
    "day": "1d",
    "daily": "1d",
    "h": "1h",
    "1h": "1h",
    "1hr": "1h",
    "hour": "1h",
    "hourly": "1h",
    "m": "1m",
    "1m": "1m",
    "1min": "1m",
    "minute": "1m",
    "5m": "5m",
    "5min": "5m",
    "15m": "15m",
    "30m": "30m",
    "2h": "2h",
    "4h": "4h",
    "6h": "6h",
    "8h": "8h",
    "12h": "12h",
    "3d": "3d",
    "1w": "1w",
    "w": "1w",
    "week": "1w",
    "weekly": "1w",
}


def interval_from_ms(step_ms: int) -> str | None:
    """The interval whose bars are `step_ms` long, if we know one."""
    return _BY_MS.get(step_ms)


def interval_ms(name: str) -> int:
    return INTERVAL_MS[name]


def interval_from_name(stem: str) -> str | None:
    """`Gemini_BTCUSD_d` -> 1d, `Gemini_ETHUSD_1h` -> 1h, `..._1-min_data` -> 1m."""
    tokens = [t for t in re.split(r"[_\s.]+", stem.lower()) if t]
    for token in reversed(tokens):
        hint = _NAME_HINTS.get(token.replace("-", ""))
        if hint:
            return hint
    return None
