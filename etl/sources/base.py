"""The seam every source plugs into: a `Source` turns a `RunContext` into a `SourceResult`.

A live source (Gemini) implements the same protocol and loads through the same path
(`etl.load.writer`, `etl.transform.validate`), so the ledger, the quarantine and the
quality report treat every source alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy import Engine

from etl.core.assets import AssetRegistry
from etl.core.series import SeriesKey, SeriesStats
from etl.core.settings import Settings

SourceStatus = Literal["success", "partial", "failed", "skipped"]


@dataclass
class RunContext:
    engine: Engine
    settings: Settings
    run_id: str
    registry: AssetRegistry
    now_ms: int
    show_progress: bool = False


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
