"""The dashboard's speed data, shared by its browser test (tests/api/test_dashboard_speed.py)
and its benchmark (bench/dashboard_load.py): 50 assets of synthetic hourly bars ending at the
current hour, the first with 5,000 bars, loaded through the real pipeline as canonical CSV."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from playwright.sync_api import Page

from api.settings import get_api_settings
from etl.db.engine import create_db_engine
from etl.pipeline import run_pipeline
from etl.sources.csv_files import CsvSource

ASSETS = 50
HOUR_MS = 3_600_000
LONG = 5000  # bars of the first asset (S00USD); the others have a week and a bit
SHORT = 200
LONG_SYMBOL = "S00USD"


class Bar(NamedTuple):
    open_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: int


def synthetic_bars(asset: int, end_ms: int) -> Iterator[Bar]:
    """Asset `asset`'s hourly bars, the newest opening an hour before `end_ms`."""
    price = 10.0 + asset
    bars = LONG if asset == 0 else SHORT
    for k in range(bars):
        close = price * (1 + 0.01 * math.sin(k / 7 + asset))
        high, low = max(price, close) * 1.002, min(price, close) * 0.998
        yield Bar(end_ms - (bars - k) * HOUR_MS, price, high, low, close, k % 13 + 1)
        price = close


def current_hour_ms() -> int:
    return int(time.time() * 1000) // HOUR_MS * HOUR_MS


def synthetic_csv(path: Path, end_ms: int) -> Path:
    lines = ["symbol,timestamp,open,high,low,close,volume,volume_quote"]
    for asset in range(ASSETS):
        for bar in synthetic_bars(asset, end_ms):
            lines.append(
                f"S{asset:02d}-USD,{bar.open_ms},{bar.open},{bar.high},{bar.low},{bar.close},"
                f"{bar.volume},"
            )
    path.write_text("\n".join(lines) + "\n")
    return path


def load_synthetic(folder: Path, end_ms: int) -> str:
    """A SQLite database in `folder` holding the synthetic bars; returns its URL."""
    url = f"sqlite:///{folder / 'speed.db'}"
    settings = get_api_settings(database_url=url, _env_file=None)
    engine = create_db_engine(settings)
    source = CsvSource([synthetic_csv(folder / "synthetic.csv", end_ms)])
    status = run_pipeline(settings, sources=[source], engine=engine).status
    engine.dispose()
    if status != "success":
        raise RuntimeError(f"loading the synthetic bars: run status {status}")
    return url


def transferred(page: Page) -> int:
    """Bytes on the wire for the page and everything it fetched (compressed bodies + headers)."""
    total: int = page.evaluate(
        """() => [...performance.getEntriesByType("navigation"),
                  ...performance.getEntriesByType("resource")]
                 .reduce((sum, entry) => sum + entry.transferSize, 0)"""
    )
    return total
