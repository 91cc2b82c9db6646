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
    """What quality needs of a stored series, computed in the database (bounded memory)."""

    bars: int
    first_open: int
    last_open: int
    zero_volume_bars: int
    gap_edges: list[tuple[int, int]]  # (open time before the gap, open time after it)
