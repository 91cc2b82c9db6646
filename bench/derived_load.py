"""Derived-stage benchmark: a run adding 100 minutes to a 5M-row minute series.

    python bench/derived_load.py [--rows 5000000] [--runs 5] [--postgres-url URL]

For PostgreSQL and for SQLite: stores a 5,000,000-row 1-minute series (BTCUSD, source
`csv`, a random walk with 50 missing minutes, so it has gaps) through the candle writer,
then, in a fresh process, times `run_pipeline` on a 100-row CSV of the next 100 minutes
(after start-up: imports and migrations are not counted; the first run and the median of
the next ones, each adding the next 100 minutes). Same run, as anchors:
- a bare load of the same 100 rows: `psql -c "\\copy ..."` into a table with the same key
  (PostgreSQL; the psql process's whole wall time, its own start-up included) and a bare
  sqlite3 `executemany` + commit (SQLite);
- the derived stage (quality profile, metrics window, metrics, quality report) computed the
  new way (the loader's `series_stats`) and the old way (the full scans of
  `tests/series_oracle.py`, what `refresh_derived` did before).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START_MS = 1_450_000_000_000 - 1_450_000_000_000 % 60_000  # 5M minutes end in 2025
SYMBOL = "BTC-USD"
HEADER = "symbol,timestamp,open,high,low,close,volume\n"

SETUP = """
import sys
import numpy as np, pandas as pd
from etl.core.assets import AssetRegistry
from etl.core.settings import get_settings
from etl.db.engine import create_db_engine, migrate, write_transaction
from etl.load.writer import ensure_asset, open_candle_writer
settings = get_settings(database_url=sys.argv[1], log_level="WARNING", _env_file=None)
rows, start, chunk = int(sys.argv[2]), int(sys.argv[3]), 500_000
engine = create_db_engine(settings)
migrate(engine)
rng = np.random.default_rng(11)
slots = np.arange(rows + 50, dtype=np.int64)
slots = np.delete(slots, rng.choice(np.arange(1, rows), 50, replace=False))[:rows]
with write_transaction(engine) as conn:
    asset_id = ensure_asset(conn, AssetRegistry().resolve("BTC-USD"))
    writer = open_candle_writer(conn, source="csv", interval="1m", batch_id=0, now_ms=start)
    try:
        price = 100.0
        for at in range(0, rows, chunk):
            n = min(chunk, rows - at)
            close = price * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
            price = float(close[-1])
            open_ = np.concatenate(([close[0]], close[:-1]))
            writer.add(pd.DataFrame({
                "asset_id": asset_id, "open_time": start + slots[at:at + n] * 60_000,
                "open": open_, "high": np.maximum(open_, close) * 1.0005,
                "low": np.minimum(open_, close) * 0.9995, "close": close,
                "volume": rng.gamma(2.0, 1.5, n), "volume_quote": np.nan}))
        writer.finish()
    finally:
        writer.close()
print(int(start + slots[-1] * 60_000))
"""

DRIVER = """
import json, statistics, sys, time
from pathlib import Path
from etl.core.settings import get_settings
from etl.db.engine import create_db_engine, migrate, write_transaction
from etl.pipeline import run_pipeline
from etl.read import series
from etl.sources.csv_files import CsvSource
from etl.core.series import SeriesStats
from etl.transform.metrics import series_metrics
from etl.transform.quality import quality_report
from tests import series_oracle
settings = get_settings(database_url=sys.argv[1], log_level="WARNING", _env_file=None)
engine = create_db_engine(settings)
migrate(engine)
runs = []
for path in sys.argv[2:]:
    started = time.perf_counter()
    summary = run_pipeline(settings, sources=[CsvSource([Path(path)])], engine=engine)
    runs.append(time.perf_counter() - started)
    assert summary.status == "success" and summary.sources["csv"]["inserted"] == 100, summary

with engine.connect() as conn:
    key = tuple(conn.exec_driver_sql(
        "SELECT asset_id, source, interval FROM series_stats WHERE source = 'csv'").one())

def derived(profile_of):
    started = time.perf_counter()
    with write_transaction(engine) as conn:
        profile = profile_of(conn, key)
        metrics = series_metrics(series.series_window(conn, key), key[2])
        metrics["spread"] = series.latest_spread(conn, key[0], key[1])
        report = quality_report(profile, interval=key[2], stats=SeriesStats(), now_ms=0)
    return time.perf_counter() - started, report

new = [derived(series.series_profile) for _ in range(3)]
old = [derived(series_oracle.series_profile) for _ in range(3)]
assert new[0][1] == old[0][1], "the stored statistics' report differs from the full scan's"
report = new[0][1]
print(json.dumps({"runs": runs, "bars": report["bar_count"],
                  "gaps": report["breakdown"]["gap_count"],
                  "derived_new": statistics.median(t for t, _ in new),
                  "derived_old": statistics.median(t for t, _ in old)}))
"""


def python(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def write_minutes(path: Path, first_ms: int, seed: int) -> None:
    """100 valid minute bars from `first_ms` on, in the canonical layout."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, 100)))
    lines = [HEADER]
    for i, c in enumerate(close):
        o = close[i - 1] if i else c
        hi, lo = max(o, c) * 1.0005, min(o, c) * 0.9995
        lines.append(f"{SYMBOL},{first_ms + i * 60_000},{o:.6f},{hi:.6f},{lo:.6f},{c:.6f},1.5\n")
    path.write_text("".join(lines))


def bare_psql(dsn: str, path: Path) -> float:
    def psql(command: str) -> None:
        subprocess.run(["psql", dsn, "-q", "-c", command], check=True, capture_output=True)

    psql("DROP TABLE IF EXISTS bench_bare100")
    psql(
        "CREATE TABLE bench_bare100 (symbol text, ts bigint, open float8, high float8, "
        "low float8, close float8, volume float8, PRIMARY KEY (symbol, ts))"
    )
    started = time.perf_counter()
    psql(f"\\copy bench_bare100 FROM '{path}' WITH (FORMAT csv, HEADER true)")
    elapsed = time.perf_counter() - started
    psql("DROP TABLE bench_bare100")
    return elapsed


def bare_executemany(path: Path, db_path: Path) -> float:
    rows = [line.rstrip("\n").split(",") for line in path.read_text().splitlines()[1:]]
    started = time.perf_counter()
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS bare (symbol text, ts integer, open real, high real, "
        "low real, close real, volume real, PRIMARY KEY (symbol, ts))"
    )
    db.executemany("INSERT INTO bare VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    return time.perf_counter() - started


def measure(label: str, url: str, rows: int, runs: int, workdir: Path, anchor: float) -> None:
    started = time.perf_counter()
    last = int(python(SETUP, url, str(rows), str(START_MS)))
    setup = time.perf_counter() - started
    paths = []
    for i in range(runs):
        path = workdir / f"{label}-{i}.csv"
        write_minutes(path, last + 60_000 * (1 + 100 * i), seed=i)
        paths.append(path)
    result = json.loads(python(DRIVER, url, *map(str, paths)))
    first, rest = result["runs"][0], sorted(result["runs"][1:])
    median = rest[len(rest) // 2] if rest else first
    print(f"{label}: {result['bars']:,} bars ({result['gaps']} gaps), stored in {setup:.0f} s")
    print(f"  bare load of the same 100 rows (anchor)      {anchor * 1000:8.1f} ms")
    print(
        f"  run adding 100 minutes, first / median next  {first * 1000:8.1f} / "
        f"{median * 1000:.1f} ms  = {first / anchor:.1f}x / {median / anchor:.1f}x the anchor"
    )
    new, old = result["derived_new"], result["derived_old"]
    print(
        f"  derived stage, stored stats / old full scan  {new * 1000:8.1f} / {old * 1000:.1f} ms"
        f"  (old = {old / new:.1f}x new)"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1/test"
        ),
    )
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)\n")
    with tempfile.TemporaryDirectory(prefix="derived-bench-") as tmp:
        workdir = Path(tmp)
        sample = workdir / "anchor.csv"
        write_minutes(sample, START_MS, seed=99)

        from sqlalchemy import create_engine, text

        pg_url = args.postgres_url.replace("postgresql://", "postgresql+psycopg2://")
        admin = create_engine(pg_url)
        with admin.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS bench_derived CASCADE"))
            conn.execute(text("CREATE SCHEMA bench_derived"))
        joiner = "&" if "?" in pg_url else "?"
        schema_url = f"{pg_url}{joiner}options=-csearch_path%3Dbench_derived"
        dsn = pg_url.replace("postgresql+psycopg2://", "postgresql://")
        try:
            anchor = sorted(bare_psql(dsn, sample) for _ in range(3))[1]
            measure("PostgreSQL", schema_url, args.rows, args.runs, workdir, anchor)
        finally:
            with admin.begin() as conn:
                conn.execute(text("DROP SCHEMA IF EXISTS bench_derived CASCADE"))
            admin.dispose()
        anchor = sorted(bare_executemany(sample, workdir / f"bare{i}.db") for i in range(3))[1]
        sqlite_url = f"sqlite:///{workdir / 'derived.db'}"
        measure("SQLite", sqlite_url, args.rows, args.runs, workdir, anchor)
    print(f"\nload average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
