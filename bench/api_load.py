"""API load benchmark: each route against a bare FastAPI app served the same way, same run.

    python bench/api_load.py [--seconds 10] [--workers 1 2] [--database-url URL]

Builds a database (SQLite by default) with the real sample from data/raw plus 1,000,000
synthetic minute bars (bench/etl_load.py's generator) and serves it as deployed
(`python -m api.serve`: auth, rate limits and the JSON access log on; limits set high
enough not to refuse, but counted), with limits in memory and then in Redis, 1 and then
2 workers. The anchor is `bench/bare_app.py` (`@app.get("/x") async def x(): return
{"ok": True}`) on the same uvicorn options and worker count, measured in the same run.
Each route gets a warm-up, then wrk (64 connections, 2 threads); the table has
requests/s, p50 and p99 latency and the ratio to the bare app's requests/s. One more
row serves `latest` with the access log off, to show what the log costs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.serve import event_loop  # noqa: E402
from api.settings import get_api_settings  # noqa: E402
from bench.etl_load import START_MS, generate  # noqa: E402
from etl.core.settings import get_settings  # noqa: E402
from etl.db.engine import create_db_engine  # noqa: E402
from etl.pipeline import run_pipeline  # noqa: E402
from etl.sources.csv_files import CsvSource  # noqa: E402

KEY = "bench-key-0123456789abcdefghij"
# Extra server settings for an experiment, e.g. BENCH_API_ENV="API_EVENT_LOOP=uvloop" or
# BENCH_API_ENV="RATE_LIMIT_STORAGE_URI=redis://127.0.0.1:6379/0"
EXTRA_ENV = dict(item.split("=", 1) for item in os.environ.get("BENCH_API_ENV", "").split() if item)
CANDLES = "/api/crypto/candles/BTC-USD?interval=1m&limit=500&source=csv"
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ROUTES = {
    "/health/live": "/health/live",
    "/api/crypto/latest": "/api/crypto/latest",
    "/api/crypto/metrics": "/api/crypto/metrics",
    "/api/crypto/candles 500 x 1m": CANDLES,
    "  same, a new page each request": CANDLES + "&start=",  # see FRESH_PAGES
}
# wrk script for the uncached candle row: a random `start` (minute) within the synthetic
# series per request, so (almost) every page is a cache miss rendered from the database.
FRESH_PAGES = f"""
math.randomseed(os.time())
request = function()
  local start = {START_MS} + math.random(0, 200000) * 60000
  return wrk.format("GET", "{CANDLES}&start=" .. start)
end
"""


def load(database_url: str, workdir: Path, bars: int) -> None:
    synthetic = workdir / "minutes.csv"
    generate(synthetic, bars)
    settings = get_settings(database_url=database_url, log_level="WARNING", _env_file=None)
    engine = create_db_engine(settings)
    sources = [CsvSource([ROOT / "data" / "raw", synthetic])]
    summary = run_pipeline(settings, sources=sources, engine=engine, trigger="bench")
    engine.dispose()
    if summary.status == "failed":
        raise SystemExit(f"loading failed: {summary.error}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(
    database_url: str, workers: int, port: int, *, storage: str, log: Path, **extra: str
) -> subprocess.Popen[bytes]:
    """The API as deployed (`python -m api.serve`), with auth on, limits set high and the
    access log (INFO, JSON lines) written to `log`; `storage` is the limits' storage URI,
    `extra` more settings (e.g. CACHE_TTL_SECONDS="0")."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "API_KEY": KEY,
        "LOG_LEVEL": "INFO",
        "RATE_LIMIT_DEFAULT": "100000000/minute",
        "RATE_LIMIT_CANDLES": "100000000/minute",
        "RATE_LIMIT_PROBES": "100000000/minute",
        "RATE_LIMIT_STORAGE_URI": storage,
        "STREAM_REDIS_URL": "",  # the API follows the database (no worker in this run)
        "DB_POOL_SIZE": "40",  # for PostgreSQL runs; SQLite caps its pool at 8 anyway
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "API_WORKERS": str(workers),
        "GEMINI_BASE_URL": "http://127.0.0.1:9",
        **EXTRA_ENV,
        **extra,
    }
    command = [sys.executable, "-m", "api.serve"]
    return started(command, env, log, f"http://127.0.0.1:{port}/health/live")


def serve_bare(workers: int, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bench.bare_app", str(port), str(workers)]
    return started(command, dict(os.environ), log, f"http://127.0.0.1:{port}/x")


def started(
    command: list[str], env: dict[str, str], log: Path, probe: str
) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=sink)
    for _ in range(100):
        try:
            with urllib.request.urlopen(probe, timeout=1):  # noqa: S310
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{command} did not start (see {log})")


def wrk(
    url: str, seconds: int, *, connections: int = 64, script: str | None = None
) -> tuple[float, float, float]:
    """req/s, p50 and p99 (ms) of `url` under wrk; `script`: a Lua request generator (by
    default FRESH_PAGES for a URL ending in `&start=`). Any non-2xx answer is an error."""
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    command += ["-H", f"X-API-Key: {KEY}"]
    if script is None and url.endswith("&start="):
        script = FRESH_PAGES
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        if script is not None:
            lua.write(script)
            lua.flush()
            command += ["-s", lua.name]
        done = subprocess.run(command + [url], capture_output=True, text=True, check=True)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]

    def percentile(name: str) -> float:
        match = re.search(rf"\s{name}%\s+([\d.]+)(us|ms|s)", done.stdout)
        assert match is not None, done.stdout  # noqa: S101
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} non-2xx answers\n{done.stdout}")
    return rate, percentile("50"), percentile("99")


def measure(url: str, seconds: int) -> tuple[float, float, float]:
    wrk(url, 2)  # warm-up
    return wrk(url, seconds)


def row(label: str, figures: tuple[float, float, float], anchor: float) -> str:
    rate, p50, p99 = figures
    return (
        f"  {label:<34} {rate:8.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
        f"  ratio {rate / anchor:4.2f}"
    )


def run_config(
    database_url: str, workdir: Path, workers: int, storage: str, seconds: int, *, log_off: bool
) -> None:
    port = free_port()
    bare = serve_bare(workers, port, workdir / "bare.log")
    try:
        anchor = measure(f"http://127.0.0.1:{port}/x", seconds)
    finally:
        bare.terminate()
        bare.wait(timeout=30)
    kind = "memory" if storage.startswith("memory") else "redis"
    loop = event_loop(
        get_api_settings(
            api_workers=workers,
            _env_file=None,
            api_event_loop=EXTRA_ENV.get("API_EVENT_LOOP", "auto"),
        )
    )
    print(f"{workers} worker(s), {loop} loop, limits in {kind}, wrk -t2 -c64 -d{seconds}s:")
    print(row("bare FastAPI /x (anchor)", anchor, anchor[0]))
    port = free_port()
    process = serve(database_url, workers, port, storage=storage, log=workdir / "api.log")
    try:
        for label, path in ROUTES.items():
            print(row(label, measure(f"http://127.0.0.1:{port}{path}", seconds), anchor[0]))
    finally:
        process.terminate()
        process.wait(timeout=30)
    if log_off:
        EXTRA_ENV["LOG_LEVEL"] = "WARNING"
        port = free_port()
        process = serve(database_url, workers, port, storage=storage, log=workdir / "api.log")
        try:
            figures = measure(f"http://127.0.0.1:{port}/api/crypto/latest", seconds)
            print(row("/api/crypto/latest, access log off", figures, anchor[0]))
        finally:
            del EXTRA_ENV["LOG_LEVEL"]
            process.terminate()
            process.wait(timeout=30)
    print()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--storage", nargs="+", default=["memory://", REDIS])
    parser.add_argument("--database-url")
    parser.add_argument("--bars", type=int, default=1_000_000, help="synthetic minute bars")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk (make bench does this)")
    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        workdir = Path(tmp)
        database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
        started_at = time.perf_counter()
        load(database_url, workdir, args.bars)
        print(
            f"loaded the real sample + 1M minute bars in {time.perf_counter() - started_at:.0f} s"
        )
        print(f"load average before the runs: {os.getloadavg()}\n")
        for workers in args.workers:
            for index, storage in enumerate(args.storage):
                log_off = workers == args.workers[0] and index == 0
                run_config(database_url, workdir, workers, storage, args.seconds, log_off=log_off)
        lines = sum('"name":"api.access"' in line for line in (workdir / "api.log").open())
        print(f"access log lines written: {lines}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
