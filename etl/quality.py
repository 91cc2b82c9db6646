"""Data quality of one series: completeness, consistency, coverage (gaps), freshness.

The score (0-100) is a weighted sum, each part in [0, 1]:
- completeness (30): share of required cells (timestamp, OHLC, a volume) present in the
  rows this run read for the series;
- consistency (30): share of complete rows that passed the OHLC, price, volume and time
  rules (duplicates are not held against it);
- coverage (20): stored bars / bars expected between the first and the newest bar;
- freshness (10): min(1, 2 * interval / age), age = now - close of the newest bar;
- activity (10): share of stored bars with non-zero volume (zero-volume bars are valid and
  real, but a series of them says little).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from etl.intervals import interval_ms
from etl.models import from_epoch_ms
from etl.sources.base import SeriesStats

WEIGHTS = {"completeness": 30, "consistency": 30, "coverage": 20, "freshness": 10, "activity": 10}
MAX_GAPS_LISTED = 100


def find_gaps(open_times: npt.NDArray[np.int64], step_ms: int) -> list[dict[str, Any]]:
    """Missing intervals between stored bars: [start, end) and how many bars are missing."""
    times = np.sort(open_times)
    steps = np.diff(times)
    where = np.nonzero(steps > step_ms)[0]
    return [
        {
            "start": from_epoch_ms(int(times[i]) + step_ms).isoformat(),
            "end": from_epoch_ms(int(times[i + 1])).isoformat(),
            "missing_bars": int(steps[i] // step_ms) - 1 + int(steps[i] % step_ms > 0),
        }
        for i in where
    ]


def quality_report(
    open_times: npt.NDArray[np.int64],
    volumes: npt.NDArray[np.float64],
    *,
    interval: str,
    stats: SeriesStats,
    now_ms: int,
) -> dict[str, Any]:
    """The report's columns for one stored series plus this run's row statistics."""
    step = interval_ms(interval)
    gaps = find_gaps(open_times, step)
    bars = int(open_times.size)
    first, last = int(open_times.min()), int(open_times.max())
    missing = sum(g["missing_bars"] for g in gaps)
    age_s = max(0.0, (now_ms - (last + step)) / 1000.0)
    zero_volume = int(np.count_nonzero(volumes == 0))
    complete_rows = stats.rows - stats.incomplete
    parts = {
        "completeness": 1.0 - stats.null_cells / stats.required_cells
        if stats.required_cells
        else 1.0,
        "consistency": 1.0 - stats.inconsistent / complete_rows if complete_rows > 0 else 1.0,
        "coverage": bars / (bars + missing),
        "freshness": min(1.0, 2 * step / 1000.0 / age_s) if age_s > 0 else 1.0,
        "activity": 1.0 - zero_volume / bars,
    }
    score = sum(WEIGHTS[name] * value for name, value in parts.items())
    return {
        "score": round(score, 2),
        "completeness": parts["completeness"],
        "consistency": parts["consistency"],
        "coverage": parts["coverage"],
        "freshness_seconds": age_s,
        "bar_count": bars,
        "missing_bars": missing,
        "zero_volume_bars": zero_volume,
        "first_open": first,
        "last_open": last,
        "gaps": gaps[-MAX_GAPS_LISTED:],
        "breakdown": {
            "weights": WEIGHTS,
            "parts": {k: round(v, 6) for k, v in parts.items()},
            "gap_count": len(gaps),
            "gaps_listed": min(len(gaps), MAX_GAPS_LISTED),
            "rows_read": stats.rows,
            "rejected": dict(stats.rejected),
        },
    }
