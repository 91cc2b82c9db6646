"""One file's quarantine: rejected rows written in bulk with their raw text (memory bounded).

A record stands for one rejected row, or for a run of no-trade rows (`etl.transform.no_trade`):
`count` is the rows it stands for, `records` what was written.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from etl.extract.csv_reader import RawLines
from etl.extract.zip_members import CsvInput, input_path
from etl.load.writer import CandleWriter, insert_rejected
from etl.sources.base import RunContext


class Quarantine:
    """Rejected rows of one file, written in bulk with their raw text (memory bounded)."""

    def __init__(self, ctx: RunContext, conn: Connection, file: CsvInput, source: str) -> None:
        self.ctx, self.conn, self.path, self.source = ctx, conn, input_path(file), source
        self.pending: list[dict[str, Any]] = []
        self.count = 0  # rows rejected
        self.records = 0  # rows written to `rejected_row`
        self.raw = RawLines(file, ctx.settings.csv_max_line_bytes)

    def add(self, line: int, reason: str, rows: int = 1) -> None:
        self.pending.append({"line": line, "reason": reason})
        self.count += rows

    def flush(self, writer: CandleWriter | None) -> None:
        if not self.pending:
            return
        text = self.raw.take(r["line"] for r in self.pending)
        rows = [
            {
                "run_id": self.ctx.run_id,
                "source": self.source,
                "file": str(self.path),
                "line": r["line"],
                "raw": _storable(text.get(r["line"], "")),
                "reason": _storable(r["reason"])[:255],
                "created_at": self.ctx.now_ms,
            }
            for r in self.pending
        ]
        if writer is not None:
            writer.wait()  # the connection is the writer's while a COPY runs
        insert_rejected(self.conn, rows)
        self.records += len(rows)
        self.pending = []


def _storable(text: str) -> str:
    return text.replace("\x00", "\\x00")  # PostgreSQL text cannot hold NUL
