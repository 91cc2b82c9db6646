"""The dashboard as a person uses it: a real headless Chromium on `python -m api.serve` (a
real process) over the real sample, on SQLite and PostgreSQL. Screenshots of every page at
phone and desktop width go to tests/artifacts/."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from etl.db.engine import create_db_engine
from etl.load.ledger import start_run
from tests.api.browser import WIDTHS, Console, canvas_ink, chromium, open_page, screenshot
from tests.api.helpers import KEY, api_settings
from tests.api.sse_client import add_tickers, now_ms
from tests.processes import launched_api

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


@pytest.fixture(scope="module")
def base(api_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("dashboard") / "api.log"
    with launched_api(
        api_database, log, API_KEYS=KEY, RATE_LIMIT_EXPORT="3/minute", STREAM_POLL_SECONDS="0.1"
    ) as url:
        yield url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = open_page(browser, "")
    yield page
    page.context.close()


def dialect(url: str) -> str:
    return "postgres" if url.startswith("postgres") else "sqlite"


def test_overview_loads_with_every_asset_and_no_console_error(
    browser: Browser, base: str, api_database: str
) -> None:
    for label, width in WIDTHS.items():
        page = open_page(browser, base, width=width)
        console = Console(page)
        page.goto(f"{base}/dashboard/")
        rows = page.locator("table.assets tbody tr")
        expect(rows).to_have_count(2)
        btc = page.locator("tr[data-symbol=BTCUSD]")
        expect(btc.locator("th")).to_contain_text("Bitcoin")
        expect(btc.locator("[data-field=price]")).to_have_text("39,179.01")  # Gemini's last close
        expect(btc).to_contain_text("+2.18%")  # sign and arrow, not colour alone
        expect(btc.locator(".badge")).to_contain_text("stale")
        expect(btc.locator("svg polyline")).to_have_count(1)  # the 7-day sparkline
        expect(page.locator("#live")).to_have_text("live")  # the SSE stream is followed
        if dialect(api_database) == "sqlite":
            screenshot(page, f"dashboard-overview-{label}")
        assert console.errors == []
        page.context.close()


def test_sorting_by_a_column_is_keyboard_operable(page: Page, base: str) -> None:
    page.goto(f"{base}/dashboard/")
    expect(page.locator("table.assets tbody tr")).to_have_count(2)
    button = page.locator("th[data-col=volatility] button")
    button.focus()
    page.keyboard.press("Enter")
    expect(page.locator("th[data-col=volatility]")).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("table.assets tbody tr").first).to_have_attribute("data-symbol", "BTCUSD")
    page.keyboard.press("Enter")
    expect(page.locator("th[data-col=volatility]")).to_have_attribute("aria-sort", "descending")
    expect(page.locator("table.assets tbody tr").first).to_have_attribute("data-symbol", "ETHUSD")


def test_a_wrong_key_shows_the_apis_problem_and_asks_again(browser: Browser, base: str) -> None:
    page = open_page(browser, base, key=None)
    console = Console(page)
    page.goto(f"{base}/dashboard/")
    field = page.locator("input[name=api_key]")
    expect(field).to_be_focused()
    field.fill("not-the-key")
    field.press("Enter")
    alert = page.locator("#alert")
    expect(alert).to_contain_text("Key refused")
    expect(alert).to_contain_text("the API key is not valid")  # the problem's own detail
    expect(field).to_be_visible()
    field.fill(KEY)
    field.press("Enter")
    # the overview's first calls with the right key: 5 s was short once on a busy CI worker
    expect(page.locator("table.assets tbody tr")).to_have_count(2, timeout=15_000)
    expect(alert).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('crypto-dashboard-key')") == KEY
    assert [e for e in console.errors if "401" not in e] == []  # the refused fetch is logged
    page.context.close()


def test_a_price_pushed_through_the_stream_shows_within_two_seconds(
    page: Page, base: str, api_database: str
) -> None:
    page.goto(f"{base}/dashboard/")
    expect(page.locator("#live")).to_have_text("live")
    time.sleep(0.3)  # the stream's subscription is in place once it answered
    engine = create_db_engine(api_settings(api_database))
    try:
        pushed = time.monotonic()
        add_tickers(engine, "ETHUSD", [2468.13], at_ms=now_ms())
        cell = page.locator("tr[data-symbol=ETHUSD] [data-field=price]")
        expect(cell).to_have_text("2,468.13", timeout=2000)
        assert time.monotonic() - pushed < 2
        expect(page.locator("tr[data-symbol=ETHUSD] .badge")).to_contain_text("fresh")
    finally:
        engine.dispose()


def test_asset_page_draws_its_charts_and_switching_interval_redraws(
    browser: Browser, base: str, api_database: str
) -> None:
    for label, width in WIDTHS.items():
        page = open_page(browser, base, width=width)
        console = Console(page)
        page.goto(f"{base}/dashboard/#/asset/BTCUSD")
        chart = page.locator("#price-chart")
        expect(chart).to_have_attribute("data-interval", "1d")
        expect(chart).to_have_attribute("data-bars", "365")  # the last year of Gemini's bars
        page.wait_for_timeout(200)
        assert canvas_ink(page, "#price-chart") > 800
        assert canvas_ink(page, "#volatility-chart") > 100
        assert canvas_ink(page, "#drawdown-chart") > 100
        expect(page.locator(".q-row[data-source=yahoo] .gap")).to_have_count(3)  # gaps shaded
        expect(page.locator(".q-row[data-source=yahoo] .reason")).to_have_text("missing_ohlc 4")
        expect(page.locator(".coverage tbody tr")).to_have_count(3)
        if dialect(api_database) == "sqlite":
            screenshot(page, f"dashboard-asset-{label}")
        assert console.errors == []
        page.context.close()

    page = open_page(browser, base)
    page.goto(f"{base}/dashboard/#/asset/BTCUSD")
    chart = page.locator("#price-chart")
    expect(chart).to_have_attribute("data-bars", "365")
    before = page.evaluate("document.querySelector('#price-chart canvas').toDataURL()")
    with page.expect_request(lambda r: "interval=1w" in r.url and "/candles/" in r.url):
        page.select_option("#interval", "1w")
    expect(chart).to_have_attribute("data-interval", "1w")
    expect(chart).to_have_attribute("data-bars", "52")  # Tuesday 2021-05-04 to 2022-04-27
    page.wait_for_timeout(200)
    assert page.evaluate("document.querySelector('#price-chart canvas').toDataURL()") != before
    page.get_by_role("button", name="All").click()
    expect(chart).to_have_attribute("data-bars", "343")  # weeks from 2015-10 to 2022-04
    page.context.close()


def test_the_download_button_saves_the_shown_range_and_limits_show(
    page: Page, base: str, tmp_path: Path
) -> None:
    page.goto(f"{base}/dashboard/#/asset/ETH")
    expect(page.locator("#price-chart")).to_have_attribute("data-bars", "365")
    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename.startswith("ETHUSD_coinmarketcap_1d_")
    assert download.suggested_filename.endswith("-20210707T0000Z.csv")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert len(rows) == 365
    assert rows[-1]["timestamp"] == "2021-07-06T00:00:00Z"
    assert float(rows[-1]["close"]) == pytest.approx(2324.67944917)

    page.select_option("#export-format", "parquet")
    with page.expect_download() as download_info:
        page.click("#download")
    assert download_info.value.suggested_filename.endswith(".parquet")
    with page.expect_download():
        page.click("#download")
    page.click("#download")  # the fourth export this minute: RATE_LIMIT_EXPORT=3/minute
    alert = page.locator("#alert")
    expect(alert).to_contain_text("Too many requests")
    expect(alert).to_contain_text("Retry in")


def test_runs_page_shows_the_ledger_and_a_new_run_within_two_seconds(
    browser: Browser, base: str, api_database: str
) -> None:
    for label, width in WIDTHS.items():
        page = open_page(browser, base, width=width)
        console = Console(page)
        page.goto(f"{base}/dashboard/#/runs")
        first = page.locator(".run-list article").first
        expect(first.locator(".chip").first).to_have_text("\u2713 success")
        expect(first.locator(".counts")).to_contain_text("9971")  # rows read from the sample
        expect(page.locator(".health")).to_contain_text("Stream worker")
        if dialect(api_database) == "sqlite":
            screenshot(page, f"dashboard-runs-{label}")
        assert console.errors == []
        if label == "desktop":
            engine = create_db_engine(api_settings(api_database))
            try:
                run_id = str(uuid.uuid4())
                start_run(engine, run_id=run_id, trigger="test", now_ms=now_ms())
                started = time.monotonic()
                expect(page.locator(f"article[data-run='{run_id}']")).to_be_visible(timeout=2000)
                assert time.monotonic() - started < 2
                expect(page.locator(".run-list article").first).to_have_attribute(
                    "data-status", "running"
                )
            finally:
                engine.dispose()
        page.context.close()


def test_the_dashboard_shell_is_keyless_but_its_data_is_not(page: Page, base: str) -> None:
    page.goto(f"{base}/dashboard")  # redirects to /dashboard/
    assert page.url.endswith("/dashboard/")
    status = page.evaluate("fetch('../api/crypto/latest', {cache: 'no-store'}).then(r => r.status)")
    assert status == 401
