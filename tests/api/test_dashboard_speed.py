"""What issue 15's speed targets rest on, checked deterministically in a real Chromium on
loopback: the overview shows all 50 assets and marks its paint, a 5,000-bar chart is drawn
whole and records its draw time, and each page's total transfer (HTML, CSS, scripts, API
answers) is under 500 KB compressed. How fast they paint and draw is measured by the
benchmark (bench/dashboard_load.py, docs/performance.md), never timed here: a loaded CI
machine makes a time limit in the suite fail at random."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.api.browser import Console, canvas_ink, chromium, open_page
from tests.api.dashboard_data import (
    ASSETS,
    LONG,
    LONG_SYMBOL,
    current_hour_ms,
    load_synthetic,
    transferred,
)
from tests.api.helpers import KEY
from tests.processes import launched_api

pytestmark = pytest.mark.browser

BUDGET = 500 * 1024  # bytes on the wire per page


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("speed")
    url = load_synthetic(folder, current_hour_ms())
    with launched_api(url, folder / "api.log", API_KEYS=KEY, RATE_LIMIT_CANDLES="1000/minute") as b:
        yield b


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


def test_the_overview_shows_fifty_assets_within_the_transfer_budget(
    browser: Browser, base: str
) -> None:
    page = open_page(browser, base, width=1440)
    console = Console(page)
    page.goto(f"{base}/dashboard/")  # cold: a fresh context, nothing cached
    expect(page.locator("table.assets tbody tr")).to_have_count(ASSETS)
    # The mark the benchmark reads; that it exists is checked here, its time is not.
    page.wait_for_function("performance.getEntriesByName('overview-painted').length > 0")
    page.wait_for_load_state("networkidle")
    assert transferred(page) < BUDGET
    assert console.errors == []
    page.context.close()


def test_a_five_thousand_bar_chart_is_drawn_within_the_transfer_budget(
    browser: Browser, base: str
) -> None:
    page = open_page(browser, base, width=1440)
    console = Console(page)
    page.goto(f"{base}/dashboard/#/asset/{LONG_SYMBOL}")
    chart = page.locator("#price-chart")
    expect(chart).to_have_attribute("data-interval", "1h")
    expect(chart).to_have_attribute("data-bars", str(LONG))
    # The draw times the benchmark reads are recorded once the bars are on the canvases.
    expect(chart).to_have_attribute("data-draw-ms", re.compile(r"^\d+\.\d$"))
    expect(chart).to_have_attribute("data-draw-all-ms", re.compile(r"^\d+\.\d$"))
    for box in ("#price-chart", "#volatility-chart", "#drawdown-chart"):
        assert canvas_ink(page, box) > 0, box
    page.wait_for_load_state("networkidle")
    assert transferred(page) < BUDGET
    assert console.errors == []
    page.context.close()
