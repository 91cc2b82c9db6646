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
