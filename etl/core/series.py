"""What identifies a series and the facts collected about it, shared by every layer."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

OHLC = ("open", "high", "low", "close")
SeriesKey = tuple[int, str, str]  # (asset_id, source, interval)
INCOMPLETE_CODES = frozenset({"missing_symbol", "missing_timestamp", "missing_ohlc", "parse_error"})


@dataclass
class SeriesStats:
    """Row-level facts about one series in one run, for its quality report."""

    rows: int = 0
    null_cells: int = 0
    required_cells: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def incomplete(self) -> int:
        return sum(n for code, n in self.rejected.items() if code in INCOMPLETE_CODES)

    @property
    def inconsistent(self) -> int:
        return (
            sum(n for code, n in self.rejected.items() if code not in INCOMPLETE_CODES)
            - self.rejected["duplicate_key"]
        )

    def merge(self, other: SeriesStats) -> None:
        self.rows += other.rows
        self.null_cells += other.null_cells
        self.required_cells += other.required_cells
        self.rejected.update(other.rejected)


@dataclass(frozen=True)
class SeriesProfile:
    """What quality needs of a stored series (the loader keeps it: `series_stats`).

    `gap_edges` are (open time before the gap, open time after it). When `gap_count` and
    `missing_bars` are given they cover every gap of the series and `gap_edges` holds only
    the newest gaps (as many as a report lists); otherwise `gap_edges` is every gap."""

    bars: int
    first_open: int
    last_open: int
    zero_volume_bars: int
    gap_edges: list[tuple[int, int]]
    gap_count: int | None = None
    missing_bars: int | None = None
