"""Load benchmark: our pipeline vs the bare database load of the same file, same run.

    python bench/etl_load.py [--rows 1000000] [--postgres-url URL]

Generates a minute-candle CSV for 4 symbols in the canonical layout, then measures
(a) a bare `COPY` of the file into an equivalent PostgreSQL table,
(b) the full pipeline (extract + validate + transform + upsert) into PostgreSQL,
(c) a bare `executemany` of the file's rows into an equivalent SQLite table,
(d) the full pipeline into SQLite,
(e) for scale, the peer approach: pandas `read_csv` + `DataFrame.to_sql` into PostgreSQL
    (on the first 100k rows: at its speed the whole file takes minutes),
plus a second pipeline run of the same file (the content-hash skip) and the peak RSS of
each pipeline process. Each pipeline runs in its own process (timed around
`run_pipeline`, after imports and migrations) so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import csv
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

SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD", "LTC-USD")
START_MS = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
DRIVER = """
import json, resource, sys, time
from pathlib import Path
from etl.db.engine import create_db_engine, migrate
from etl.pipeline import run_pipeline
from etl.core.settings import get_settings
from etl.sources.csv_files import CsvSource
settings = get_settings(database_url=sys.argv[1], log_level="WARNING", _env_file=None)
engine = create_db_engine(settings)
migrate(engine)
started = time.perf_counter()
summary = run_pipeline(settings, sources=[CsvSource([Path(sys.argv[2])])], engine=engine)
elapsed = time.perf_counter() - started
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": elapsed, "peak_mb": peak_mb, "status": summary.status,
                  "csv": summary.sources.get("csv"), "error": summary.error}))
"""


def generate(path: Path, rows: int, symbols: tuple[str, ...] = SYMBOLS) -> None:
    """A random walk per symbol; valid OHLC, positive volumes, interleaved symbols."""
    rng = np.random.default_rng(7)
    per_symbol = rows // len(symbols)
    with path.open("w", newline="") as handle:
        handle.write("symbol,timestamp,open,high,low,close,volume\n")
        for index, symbol in enumerate(symbols):
            steps = rng.normal(0, 0.001, per_symbol)
            close = (100.0 * (index + 1)) * np.exp(np.cumsum(steps))
            open_ = np.concatenate(([close[0]], close[:-1]))
            spread = np.abs(rng.normal(0, 0.0005, per_symbol)) * close
            high = np.maximum(open_, close) + spread
            low = np.minimum(open_, close) - spread
            volume = rng.gamma(2.0, 1.5, per_symbol)
            times = START_MS + np.arange(per_symbol, dtype=np.int64) * 60_000
            block = np.column_stack((times, open_, high, low, close, volume))
            lines = (
                f"{symbol},{int(t)},{o:.6f},{h:.6f},{lo:.6f},{c:.6f},{v:.8f}\n"
                for t, o, h, lo, c, v in block
            )
            handle.writelines(lines)


def bare_copy(url: str, path: Path) -> float:
    import psycopg2

    dsn = url.replace("postgresql+psycopg2://", "postgresql://")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_bare")
        cur.execute(
            "CREATE TABLE bench_bare (symbol text, ts bigint, open float8, high float8, "
            "low float8, close float8, volume float8, PRIMARY KEY (symbol, ts))"
        )
        conn.commit()
        started = time.perf_counter()
        with path.open() as handle:
            cur.copy_expert("COPY bench_bare FROM STDIN WITH (FORMAT csv, HEADER true)", handle)
        conn.commit()
        elapsed = time.perf_counter() - started
        cur.execute("DROP TABLE bench_bare")
    return elapsed


def bare_executemany(path: Path, workdir: Path) -> float:
    db = sqlite3.connect(workdir / "bare.db")
    db.execute(
        "CREATE TABLE bare (symbol text, ts integer, open real, high real, low real, "
        "close real, volume real, PRIMARY KEY (symbol, ts))"
    )
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    started = time.perf_counter()
    with path.open() as handle:
        reader = csv.reader(handle)
        next(reader)
        db.executemany("INSERT INTO bare VALUES (?, ?, ?, ?, ?, ?, ?)", reader)
    db.commit()
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


def pandas_to_sql(url: str, path: Path, rows: int) -> float:
    """The peer approach (read_csv + DataFrame.to_sql), on the first `rows` rows only."""
    import pandas as pd
    from sqlalchemy import create_engine

    engine = create_engine(url)
    frame = pd.read_csv(path, nrows=rows)
    started = time.perf_counter()
    frame.to_sql("bench_to_sql", engine, if_exists="replace", index=False, chunksize=10_000)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def pipeline(url: str, path: Path, driver: str = DRIVER) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", driver, url, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != "success":
        raise SystemExit(f"pipeline run failed: {result}")
    return result


def reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS bench CASCADE"))
        conn.execute(text("CREATE SCHEMA bench"))
    engine.dispose()


def report(label: str, rows: int, seconds: float, reference: float | None = None) -> None:
    rate = rows / seconds / 1e6
    ratio = f"  ratio {reference / seconds:5.2f}" if reference else ""
    print(f"{label:<46} {seconds:7.2f} s  {rate:6.3f} M rows/s{ratio}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1/test"
        ),
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="etl-bench-") as tmp:
        workdir = Path(tmp)
        path = workdir / "candles.csv"
        generate(path, args.rows)
        size_mb = path.stat().st_size / 2**20
        print(f"{args.rows:,} minute candles, {len(SYMBOLS)} symbols, {size_mb:.0f} MiB CSV\n")

        pg_url = args.postgres_url.replace("postgresql://", "postgresql+psycopg2://")
        reset_postgres(pg_url)
        schema_url = pg_url + ("&" if "?" in pg_url else "?") + "options=-csearch_path%3Dbench"
        a = bare_copy(pg_url, path)
        b = pipeline(schema_url, path)
        b2 = pipeline(schema_url, path)
        reset_postgres(pg_url)
        peer_rows = min(n_peer := 100_000, args.rows)
        e = pandas_to_sql(schema_url, path, peer_rows)
        reset_postgres(pg_url)
        c = bare_executemany(path, workdir)
        sqlite_url = f"sqlite:///{workdir / 'pipeline.db'}"
        d = pipeline(sqlite_url, path)
        d2 = pipeline(sqlite_url, path)

        n = args.rows
        report("(a) PostgreSQL bare COPY", n, a)
        report("(b) pipeline into PostgreSQL  [b/a]", n, float(b["seconds"]), a)  # type: ignore[arg-type]
        report("(c) SQLite bare executemany", n, c)
        report("(d) pipeline into SQLite      [d/c]", n, float(d["seconds"]), c)  # type: ignore[arg-type]
        report(
            f"(e) peer: pandas to_sql, PostgreSQL, {n_peer // 1000}k rows [e/a]",
            peer_rows,
            e,
            a * peer_rows / n,
        )
        print()
        for label, first, second in (("PostgreSQL", b, b2), ("SQLite", d, d2)):
            share = float(second["seconds"]) / float(first["seconds"]) * 100  # type: ignore[arg-type]
            print(
                f"{label:<10} second run of the same file: {float(second['seconds']):.3f} s "  # type: ignore[arg-type]
                f"= {share:.1f}% of the first (target < 5%); "
                f"peak RSS {float(first['peak_mb']):.0f} MB (target < 400 MB)"  # type: ignore[arg-type]
            )
        for result in (b, d):
            csv_counts = result["csv"]
            if not isinstance(csv_counts, dict) or csv_counts["inserted"] != n:
                raise SystemExit(f"pipeline did not load every row: {csv_counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
