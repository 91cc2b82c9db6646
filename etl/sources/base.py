"""The seam every source plugs into: a `Source` turns a `RunContext` into a `SourceResult`.

A live source (Gemini) implements the same protocol and loads through the same path
(`etl.load.CandleWriter`, `etl.validate`), so the ledger, the quarantine and the quality
report treat every source alike.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy import Engine

from etl.assets import AssetRegistry
from etl.settings import Settings

SourceStatus = Literal["success", "partial", "failed", "skipped"]
SeriesKey = tuple[int, str, str]  # (asset_id, source, interval)
INCOMPLETE_CODES = frozenset({"missing_symbol", "missing_timestamp", "missing_ohlc", "parse_error"})


@dataclass
class RunContext:
    engine: Engine
    settings: Settings
    run_id: str
    registry: AssetRegistry
    now_ms: int
    show_progress: bool = False


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


@dataclass
class SourceResult:
    name: str
    status: SourceStatus = "success"
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    series: dict[SeriesKey, SeriesStats] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "read": self.read,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "errors": self.errors,
            "details": self.details,
        }


class Source(Protocol):
    name: str

    def run(self, ctx: RunContext) -> SourceResult: ...
