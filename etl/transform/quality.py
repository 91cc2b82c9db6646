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

from collections.abc import Sequence
from typing import Any

from etl.core.clock import from_epoch_ms
from etl.core.intervals import interval_ms
from etl.core.series import SeriesProfile, SeriesStats

WEIGHTS = {"completeness": 30, "consistency": 30, "coverage": 20, "freshness": 10, "activity": 10}
MAX_GAPS_LISTED = 100


def missing_bars(before: int, after: int, step_ms: int) -> int:
    """Bars missing between two consecutive stored open times (a partial step counts as
    one); 0 when they are at most one interval apart."""
    span = after - before
    if span <= step_ms:
        return 0
    return span // step_ms - 1 + int(span % step_ms > 0)


def find_gaps(edges: Sequence[tuple[int, int]], step_ms: int) -> list[dict[str, Any]]:
    """Missing intervals between consecutive stored bars (given as the open times on either
    side): [start, end) and how many bars are missing (a partial step counts as one)."""
    gaps = []
    for before, after in edges:
        span = after - before
        if span <= step_ms:
            continue
        gaps.append(
            {
                "start": from_epoch_ms(before + step_ms).isoformat(),
                "end": from_epoch_ms(after).isoformat(),
                "missing_bars": missing_bars(before, after, step_ms),
            }
        )
    return gaps


def quality_report(
    profile: SeriesProfile, *, interval: str, stats: SeriesStats, now_ms: int
) -> dict[str, Any]:
    """The report's columns for one stored series plus this run's row statistics."""
    step = interval_ms(interval)
    gaps = find_gaps(profile.gap_edges, step)
    bars = profile.bars
    if profile.gap_count is None or profile.missing_bars is None:
        gap_count, missing = len(gaps), sum(g["missing_bars"] for g in gaps)
    else:  # the stored totals; gap_edges holds the newest gaps only
        gap_count, missing = profile.gap_count, profile.missing_bars
    age_s = max(0.0, (now_ms - (profile.last_open + step)) / 1000.0)
    complete_rows = stats.rows - stats.incomplete
    parts = {
        "completeness": (
            1.0 - stats.null_cells / stats.required_cells if stats.required_cells else 1.0
        ),
        "consistency": 1.0 - stats.inconsistent / complete_rows if complete_rows > 0 else 1.0,
        "coverage": bars / (bars + missing),
        "freshness": min(1.0, 2 * step / 1000.0 / age_s) if age_s > 0 else 1.0,
        "activity": 1.0 - profile.zero_volume_bars / bars,
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
        "zero_volume_bars": profile.zero_volume_bars,
        "first_open": profile.first_open,
        "last_open": profile.last_open,
        "gaps": gaps[-MAX_GAPS_LISTED:],
        "breakdown": {
            "weights": WEIGHTS,
            "parts": {k: round(v, 6) for k, v in parts.items()},
            "gap_count": gap_count,
            "gaps_listed": min(gap_count, MAX_GAPS_LISTED),
            "rows_read": stats.rows,
            "rejected": dict(stats.rejected),
        },
    }
