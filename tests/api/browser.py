"""A real headless Chromium (Debian's `chromium`, driven by Playwright's bundled driver; never
`playwright install`) for the dashboard's browser tests, and what they share."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.api.helpers import KEY

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"  # screenshots, kept by CI, ignored by git
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WIDTHS = {"phone": 375, "desktop": 1440}


def chromium_path() -> str | None:
    """The Chromium executable to drive, or None when it is not installed."""
    return CHROMIUM if Path(CHROMIUM).exists() or shutil.which(CHROMIUM) else None


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    """A headless Chromium for as long as the block runs (the tests' and the benchmark's)."""
    executable = chromium_path()
    if executable is None:
        raise FileNotFoundError(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        try:
            yield browser
        finally:
            browser.close()


def chromium() -> Iterator[Browser]:
    """One browser for a test module; a skip (a failure in CI) without Chromium."""
    if chromium_path() is None:
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with launched_chromium() as browser:
        yield browser


class Console:
    """Console errors and uncaught exceptions of a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def _message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)


def open_page(browser: Browser, base: str, *, width: int = 1440, key: str | None = KEY) -> Page:
    """A fresh context (its own sessionStorage) on the overview, with `key` already given."""
    context = browser.new_context(viewport={"width": width, "height": 900}, accept_downloads=True)
    page = context.new_page()
    if key is not None:
        page.add_init_script(f"sessionStorage.setItem('crypto-dashboard-key', {key!r})")
    return page


def canvas_ink(page: Page, selector: str) -> int:
    """How many pixels of the charts' canvases under `selector` are drawn (not blank)."""
    count: int = page.evaluate(
        """(selector) => {
            let ink = 0;
            for (const canvas of document.querySelectorAll(`${selector} canvas`)) {
                if (!canvas.width || !canvas.height) continue;
                const context = canvas.getContext("2d");
                const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
                for (let i = 3; i < data.length; i += 4 * 7) {
                    const white = data[i - 3] > 245 && data[i - 2] > 245 && data[i - 1] > 245;
                    const blank = data[i] === 0 || white;
                    if (!blank) ink += 1;
                }
            }
            return ink;
        }""",
        selector,
    )
    return count


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
