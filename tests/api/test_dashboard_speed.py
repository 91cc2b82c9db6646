"""The dashboard's speed, measured in a real Chromium on loopback: the overview of 50 assets
painted within 1 s of navigation, a 5,000-bar chart drawn within 200 ms, and each page's
total transfer (HTML, CSS, scripts, API answers) under 500 KB compressed. Synthetic hourly
bars ending now, loaded through the real pipeline as canonical CSV, on SQLite."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from api.settings import get_api_settings
from etl.db.engine import create_db_engine
from etl.pipeline import run_pipeline
from etl.sources.csv_files import CsvSource
from tests.api.browser import Console, chromium, open_page
from tests.api.helpers import KEY
from tests.processes import launched_api

pytestmark = pytest.mark.browser

ASSETS = 50
HOUR_MS = 3_600_000
LONG = 5000  # bars of the first asset; the others have a week and a bit


def synthetic_csv(path: Path) -> Path:
    end = int(time.time() * 1000) // HOUR_MS * HOUR_MS
    lines = ["symbol,timestamp,open,high,low,close,volume,volume_quote"]
    for asset in range(ASSETS):
        price = 10.0 + asset
        bars = LONG if asset == 0 else 200
        for k in range(bars):
            close = price * (1 + 0.01 * math.sin(k / 7 + asset))
            high, low = max(price, close) * 1.002, min(price, close) * 0.998
            opened = end - (bars - k) * HOUR_MS
            lines.append(f"S{asset:02d}-USD,{opened},{price},{high},{low},{close},{k % 13 + 1},")
            price = close
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("speed")
    url = f"sqlite:///{folder / 'speed.db'}"
    settings = get_api_settings(database_url=url, _env_file=None)
    engine = create_db_engine(settings)
    source = CsvSource([synthetic_csv(folder / "synthetic.csv")])
    assert run_pipeline(settings, sources=[source], engine=engine).status == "success"
    engine.dispose()
    with launched_api(url, folder / "api.log", API_KEYS=KEY, RATE_LIMIT_CANDLES="1000/minute") as b:
        yield b


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


def transferred(page: Page) -> int:
    """Bytes on the wire for the page and everything it fetched (compressed bodies + headers)."""
    total: int = page.evaluate(
        """() => [...performance.getEntriesByType("navigation"),
                  ...performance.getEntriesByType("resource")]
                 .reduce((sum, entry) => sum + entry.transferSize, 0)"""
    )
    return total


def test_the_overview_of_fifty_assets_paints_within_a_second(browser: Browser, base: str) -> None:
    page = open_page(browser, base, width=1440)
    console = Console(page)
    page.goto(f"{base}/dashboard/")  # cold: a fresh context, nothing cached
    expect(page.locator("table.assets tbody tr")).to_have_count(ASSETS)
    page.wait_for_function("performance.getEntriesByName('overview-painted').length > 0")
    painted = page.evaluate("performance.getEntriesByName('overview-painted')[0].startTime")
    print(f"overview of {ASSETS} assets painted at {painted:.0f} ms")  # noqa: T201
    assert painted < 1000
    page.wait_for_load_state("networkidle")
    size = transferred(page)
    print(f"overview transfer: {size / 1024:.0f} KB")  # noqa: T201
    assert size < 500 * 1024
    assert console.errors == []
    page.context.close()


def test_a_five_thousand_bar_chart_draws_within_200_ms(browser: Browser, base: str) -> None:
    page = open_page(browser, base, width=1440)
    console = Console(page)
    page.goto(f"{base}/dashboard/#/asset/S00USD")
    chart = page.locator("#price-chart")
    expect(chart).to_have_attribute("data-interval", "1h")
    expect(chart).to_have_attribute("data-bars", str(LONG))
    page.wait_for_function("document.querySelector('#price-chart').dataset.drawMs !== undefined")
    drawn = float(chart.get_attribute("data-draw-ms") or "inf")
    print(f"{LONG}-bar chart drawn in {drawn:.0f} ms")  # noqa: T201
    assert drawn < 200
    page.wait_for_load_state("networkidle")
    size = transferred(page)
    print(f"asset page transfer: {size / 1024:.0f} KB")  # noqa: T201
    assert size < 500 * 1024
    assert console.errors == []
    page.context.close()
