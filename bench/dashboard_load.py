"""Dashboard benchmark: issue 15's speed targets, measured in a real Chromium on loopback.

    python bench/dashboard_load.py [--loads 20]

The data of the dashboard's speed test (tests/api/dashboard_data.py: 50 assets of hourly
bars, the first with 5,000) is loaded into SQLite through the real pipeline and served as
deployed (`python -m api.serve`, 1 worker, auth on, rate limits raised out of the way). Each
of `--loads` rounds opens, in a fresh browser context (nothing cached):

- the overview (`/dashboard/`): when the table of 50 assets was painted (the page's
  `overview-painted` mark, from navigation start);
- its anchor: a static file served by the same process through the same middleware
  (`/dashboard/assets/vendor/lightweight-charts.LICENSE.txt`), its first contentful paint
  from navigation start: the floor of "navigate, one round trip, paint";
- the asset page of the 5,000-bar asset: its chart's `data-draw-ms` (bars to pixels: the
  price chart with volume, SMA and EMA) and `data-draw-all-ms` (to the volatility and
  drawdown charts too, painted in the next frame);
- its anchor: a bare page with the vendored chart library alone drawing the same 5,000
  candles at the same width, timed the same way (setData, fitContent, then the next
  animation frame, after the library's paint): the floor of drawing those bars with this
  library;

and each page's bytes on the wire. Prints medians and p95s with their ratios to the
anchors, checks issue 15's absolute targets, and writes bench/out/dashboard_load.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Browser  # noqa: E402

from tests.api.browser import launched_chromium, open_page  # noqa: E402
from tests.api.dashboard_data import (  # noqa: E402
    ASSETS,
    LONG,
    LONG_SYMBOL,
    current_hour_ms,
    load_synthetic,
    synthetic_bars,
    transferred,
)
from tests.api.helpers import KEY  # noqa: E402
from tests.processes import launched_api  # noqa: E402

OUT = ROOT / "bench" / "out" / "dashboard_load.json"
ANCHOR_FILE = "/dashboard/assets/vendor/lightweight-charts.LICENSE.txt"
LIBRARY = "/dashboard/assets/vendor/lightweight-charts.js"
WIDTH = 1440
TARGETS = {"overview_paint_ms": 1000.0, "chart_draw_ms": 200.0, "transfer_kb": 500.0}

FIRST_PAINT = """() => new Promise((resolve) => {
    const seen = performance.getEntriesByName("first-contentful-paint");
    if (seen.length) { resolve(seen[0].startTime); return; }
    new PerformanceObserver((list, observer) => {
        const entry = list.getEntriesByName("first-contentful-paint")[0];
        if (entry) { observer.disconnect(); resolve(entry.startTime); }
    }).observe({ type: "paint", buffered: true });
})"""

# A polling wait_for_function would evaluate a string, which the dashboard's CSP forbids.
OVERVIEW_PAINT = """() => new Promise((resolve) => {
    const mark = () => performance.getEntriesByName("overview-painted")[0];
    const poll = () => (mark() ? resolve(mark().startTime) : setTimeout(poll, 5));
    poll();
})"""

# The same measurement as asset.js's draw(), with the library alone and candles alone.
BARE_DRAW = """async (bars) => {
    document.body.style.margin = "0";
    const box = document.createElement("div");
    box.style.width = "1400px";
    document.body.append(box);
    const chart = LightweightCharts.createChart(box, { autoSize: true, height: 380 });
    const candles = chart.addSeries(LightweightCharts.CandlestickSeries, {});
    await new Promise((resolve) => requestAnimationFrame(resolve));  // settled, as the page is
    const t0 = performance.now();
    candles.setData(bars);
    chart.timeScale().fitContent();
    await new Promise((resolve) => requestAnimationFrame(resolve));
    return performance.now() - t0;
}"""


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "p95": percentile(values, 0.95),
        "min": min(values),
        "max": max(values),
    }


def overview_paint(browser: Browser, base: str) -> tuple[float, int]:
    page = open_page(browser, base, width=WIDTH)
    page.goto(f"{base}/dashboard/")
    painted: float = page.evaluate(OVERVIEW_PAINT)
    rows = page.locator("table.assets tbody tr").count()
    if rows != ASSETS:
        raise RuntimeError(f"the overview shows {rows} assets, not {ASSETS}")
    page.wait_for_load_state("networkidle")
    size = transferred(page)
    page.context.close()
    return painted, size


def static_paint(browser: Browser, base: str) -> float:
    page = open_page(browser, base, width=WIDTH)
    page.goto(f"{base}{ANCHOR_FILE}")
    painted: float = page.evaluate(FIRST_PAINT)
    page.context.close()
    return painted


def chart_draw(browser: Browser, base: str) -> tuple[float, float, int]:
    """The price chart's draw, the draw of all three charts, and the page's bytes."""
    page = open_page(browser, base, width=WIDTH)
    page.goto(f"{base}/dashboard/#/asset/{LONG_SYMBOL}")
    chart = page.locator("#price-chart")
    page.locator("#price-chart[data-draw-all-ms]").wait_for(state="attached")
    bars = chart.get_attribute("data-bars")
    if bars != str(LONG):
        raise RuntimeError(f"the chart drew {bars} bars, not {LONG}")
    drawn = float(chart.get_attribute("data-draw-ms") or "nan")
    all_drawn = float(chart.get_attribute("data-draw-all-ms") or "nan")
    page.wait_for_load_state("networkidle")
    size = transferred(page)
    page.context.close()
    return drawn, all_drawn, size


def bare_draw(browser: Browser, base: str, bars: list[dict[str, float]]) -> float:
    page = open_page(browser, base, width=WIDTH)
    page.goto(f"{base}{ANCHOR_FILE}")  # same origin, so the library loads from the same server
    page.set_content("<!doctype html><html><head></head><body></body></html>")
    page.add_script_tag(url=f"{base}{LIBRARY}")
    drawn: float = page.evaluate(BARE_DRAW, bars)
    page.context.close()
    return drawn


def measure(loads: int) -> dict[str, Any]:
    end_ms = current_hour_ms()
    bars = [
        {"time": b.open_ms // 1000, "open": b.open, "high": b.high, "low": b.low, "close": b.close}
        for b in synthetic_bars(0, end_ms)
    ]
    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
        folder = Path(tmp)
        url = load_synthetic(folder, end_ms)
        limits = {
            f"RATE_LIMIT_{name}": "100000/minute" for name in ("DEFAULT", "CANDLES", "PROBES")
        }
        samples: dict[str, list[float]] = {
            "static_paint_ms": [],
            "overview_paint_ms": [],
            "bare_draw_ms": [],
            "chart_draw_ms": [],
            "charts_draw_all_ms": [],
        }
        sizes: dict[str, int] = {}
        with (
            launched_api(url, folder / "api.log", API_KEYS=KEY, **limits) as base,
            launched_chromium() as browser,
        ):
            # one untimed round: the server's caches and the browser's first start
            overview_paint(browser, base)
            chart_draw(browser, base)
            for _ in range(loads):  # interleaved, so the machine's moods hit both sides alike
                samples["static_paint_ms"].append(static_paint(browser, base))
                painted, sizes["overview_bytes"] = overview_paint(browser, base)
                samples["overview_paint_ms"].append(painted)
                samples["bare_draw_ms"].append(bare_draw(browser, base, bars))
                drawn, all_drawn, sizes["asset_page_bytes"] = chart_draw(browser, base)
                samples["chart_draw_ms"].append(drawn)
                samples["charts_draw_all_ms"].append(all_drawn)
    figures = {name: summary(values) for name, values in samples.items()}
    return {"loads": loads, "figures": figures, "bytes": sizes, "samples": samples}


def report(result: dict[str, Any]) -> None:
    figures = result["figures"]
    print(f"{result['loads']} loads each, medians and p95s in ms (fresh context per load)")
    rows = [
        ("static file, first paint (anchor)", "static_paint_ms", None),
        (f"overview of {ASSETS} assets painted", "overview_paint_ms", "static_paint_ms"),
        (f"library alone, {LONG} candles drawn (anchor)", "bare_draw_ms", None),
        (f"asset page, {LONG}-bar chart drawn", "chart_draw_ms", "bare_draw_ms"),
        ("  and its volatility and drawdown charts", "charts_draw_all_ms", "bare_draw_ms"),
    ]
    for label, name, anchor in rows:
        f = figures[name]
        ratio = ""
        if anchor:
            a = figures[anchor]
            ratio = f"  x{f['median'] / a['median']:.2f} / x{f['p95'] / a['p95']:.2f} of the anchor"
        print(f"  {label:45} {f['median']:7.1f} / {f['p95']:7.1f}{ratio}")
    sizes = result["bytes"]
    for name, size in sizes.items():
        print(f"  {name:45} {size / 1024:7.1f} KB")
    checks = {
        "overview painted < 1 s (p95)": figures["overview_paint_ms"]["p95"]
        < TARGETS["overview_paint_ms"],
        "5,000-bar chart drawn < 200 ms (p95)": figures["chart_draw_ms"]["p95"]
        < TARGETS["chart_draw_ms"],
        "each page < 500 KB": max(sizes.values()) / 1024 < TARGETS["transfer_kb"],
    }
    for label, met in checks.items():
        print(f"  issue 15: {label}: {'met' if met else 'NOT met'}")
    result["targets_met"] = checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loads", type=int, default=20, help="timed loads of each page")
    args = parser.parse_args()
    result = measure(args.loads)
    report(result)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
