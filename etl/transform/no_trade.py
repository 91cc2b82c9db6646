"""No-trade rows summarised as runs: Bitstamp's Kaggle releases write a row of `NaN` for
every minute without a trade (about 1.2 million in the full file). Each row is still not
loaded, but the quarantine holds one record per run of consecutive such rows (its first
and last time, and how many rows), so it grows with problems, not with quiet nights.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

from etl.core.series import OHLC

VALUE_COLUMNS = (*OHLC, "volume", "volume_quote")
NO_TRADE_RUN = "no_trade_run"


def no_trade_mask(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Rows with a time and an asset but no value at all (and nothing unreadable)."""
    empty = frame[list(VALUE_COLUMNS)].isna().all(axis=1)
    known = frame["open_time"].notna() & frame["asset_id"].notna() & frame["parse_error"].isna()
    return (empty & known).to_numpy()


def _shown(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Run:
    asset_id: int
    first_line: int
    last_line: int
    first_ms: int
    last_ms: int
    rows: int

    @property
    def reason(self) -> str:
        return (
            f"{NO_TRADE_RUN}: {self.rows} rows without trades, from {_shown(self.first_ms)} "
            f"to {_shown(self.last_ms)} UTC (lines {self.first_line}-{self.last_line})"
        )


class NoTradeRuns:
    """Collects no-trade rows in file order; a run ends at the first line that is not the
    next one (a traded row, a bad row or a blank line in between) or another asset."""

    def __init__(self) -> None:
        self.current: Run | None = None

    def feed(self, rows: pd.DataFrame) -> list[Run]:
        """Add rows (`line`, `open_time`, `asset_id`, in file order); the runs they closed."""
        if rows.empty:
            return []
        lines = rows["line"].to_numpy(np.int64)
        times = rows["open_time"].to_numpy(np.float64).astype(np.int64)
        assets = rows["asset_id"].to_numpy(np.float64).astype(np.int64)
        starts = np.flatnonzero((np.diff(lines) != 1) | (np.diff(assets) != 0)) + 1
        closed: list[Run] = []
        for begin, end in zip(
            np.concatenate(([0], starts)), np.concatenate((starts, [len(lines)])), strict=True
        ):
            run = Run(
                int(assets[begin]),
                int(lines[begin]),
                int(lines[end - 1]),
                int(times[begin]),
                int(times[end - 1]),
                int(end - begin),
            )
            closed.extend(self._extend_or_replace(run))
        return closed

    def _extend_or_replace(self, run: Run) -> list[Run]:
        current = self.current
        if (
            current is not None
            and current.asset_id == run.asset_id
            and run.first_line == current.last_line + 1
        ):
            current.last_line, current.last_ms = run.last_line, run.last_ms
            current.rows += run.rows
            return []
        self.current = run
        return [current] if current is not None else []

    def close(self) -> list[Run]:
        """The open run, ended (at the end of the file, or before the quarantine flushes)."""
        current, self.current = self.current, None
        return [current] if current is not None else []
