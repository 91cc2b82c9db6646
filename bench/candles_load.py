"""Candle pages of any interval over a long series, and what keeping rollups costs a load.

    python bench/candles_load.py [--rows 5000000] [--seconds 10]
                                 [--databases sqlite postgres] [--postgres-url URL]

Per database: one 1-minute series of `--rows` bars (bench/etl_load.py's generator, one
symbol) is loaded three ways, each timed: the bare load (`COPY` of the CSV into an
equivalent table on PostgreSQL, `executemany` on SQLite), the real loader with its
rollups switched off (the loader before rollups) and the real loader (`run_pipeline`,
rollups kept as in production). Then the API is served as deployed (`python -m
api.serve`, 1 worker, auth and limits on, its page cache off: `CACHE_TTL_SECONDS=0`) and
wrk asks for 500-bar pages at random starts within the series, for `1m`, `1h`, `1d` and
`1w`: one client (p50, p99), then 16 clients (p99; any non-2xx answer fails the run).
The anchor is a bare FastAPI route (`bench/bare_app.py`) served the same way in the same
run, with the same wrk settings.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_load import free_port, serve, serve_bare, wrk  # noqa: E402
from bench.etl_load import (  # noqa: E402
    DRIVER,
    START_MS,
    bare_copy,
    bare_executemany,
    generate,
    pipeline,
    reset_postgres,
)

SYMBOL = "BTC-USD"
INTERVALS = {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000, "1w": 604_800_000}
PAGE = 500
# The loader before rollups: the same run with the writer left unwrapped.
DRIVER_WITHOUT_ROLLUPS = DRIVER.replace(
    "from etl.pipeline import run_pipeline",
    "import etl.load.writer\n"
    "etl.load.writer.RollupWriter = lambda inner, conn, **kw: inner\n"
    "from etl.pipeline import run_pipeline",
)
POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def pages_script(path: str, rows: int, step_ms: int) -> str:
    """wrk Lua: each request a page at a random start, so no two share an answer."""
    span = max(1, rows * 60_000 // step_ms - PAGE)
    return f"""
math.randomseed(os.time())
request = function()
  local start = {START_MS} + math.random(0, {span}) * {step_ms}
  return wrk.format("GET", "{path}&start=" .. start)
end
"""


def loads(url: str, csv: Path, workdir: Path, rows: int) -> dict[str, float]:
    """Seconds to load `csv`: bare, the loader without rollups, the loader (kept loaded)."""
    postgres = url.startswith("postgresql")
    if postgres:
        reset_postgres(url.split("?")[0])
    seconds = {"bare": bare_copy(url, csv) if postgres else bare_executemany(csv, workdir)}
    for label, driver in (("without rollups", DRIVER_WITHOUT_ROLLUPS), ("loader", DRIVER)):
        if postgres:
            reset_postgres(url.split("?")[0])
        else:
            (workdir / "bench.db").unlink(missing_ok=True)
        result = pipeline(url, csv, driver)
        seconds[label] = float(str(result["seconds"]))
    for label, value in seconds.items():
        print(f"  load {label:<16} {value:7.1f} s  {rows / value / 1e6:5.2f} M rows/s")
    print(
        f"  rollups: the loader takes {seconds['loader'] / seconds['without rollups']:.2f}x "
        f"the loader without them, {seconds['loader'] / seconds['bare']:.2f}x the bare load"
    )
    return seconds


def serving(url: str, rows: int, seconds: int) -> None:
    bare_port = free_port()
    logs = Path(tempfile.mkdtemp(prefix="candles-bench-"))
    bare = serve_bare(1, bare_port, logs / "bare.log")
    port = free_port()
    api = serve(
        url,
        1,
        port,
        storage="memory://",
        log=logs / "api.log",
        CACHE_TTL_SECONDS="0",
        CACHE_STALE_SECONDS="0",
    )
    try:
        cases: list[tuple[str, str, str | None, int]] = [
            ("bare FastAPI /x", f"http://127.0.0.1:{bare_port}/x", None, 0)
        ]
        for interval, step in INTERVALS.items():
            path = f"/api/crypto/candles/{SYMBOL}?interval={interval}&limit={PAGE}"
            lua = pages_script(path, rows, step)
            cases.append((f"{interval} x {PAGE}", f"http://127.0.0.1:{port}{path}", lua, step))
        print(f"  {'':<18} {'1 client':>34}   {'16 clients':>34}")
        floor: dict[int, float] = {}
        for label, target, script, _ in cases:
            figures = []
            for clients in (1, 16):
                wrk(target, 2, connections=clients, script=script)  # warm-up
                rate, p50, p99 = wrk(target, seconds, connections=clients, script=script)
                floor.setdefault(clients, rate)
                figures.append(
                    f"{rate:7.0f}/s p50 {p50:6.1f} p99 {p99:6.1f} ms ({rate / floor[clients]:.3f})"
                )
            print(f"  {label:<18} {figures[0]}   {figures[1]}")
    finally:
        for process in (api, bare):
            process.terminate()
            process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk (make bench does this)")
    with tempfile.TemporaryDirectory(prefix="candles-bench-") as tmp:
        workdir = Path(tmp)
        csv = workdir / "minutes.csv"
        started_at = time.perf_counter()
        generate(csv, args.rows, (SYMBOL,))
        print(f"generated {args.rows:,} minute bars in {time.perf_counter() - started_at:.0f} s")
        for database in args.databases:
            url = (
                f"sqlite:///{workdir / 'bench.db'}"
                if database == "sqlite"
                else f"{args.postgres_url}?options=-csearch_path%3Dbench"
            )
            print(f"\n{database}:")
            loads(url, csv, workdir, args.rows)
            serving(url, args.rows, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
