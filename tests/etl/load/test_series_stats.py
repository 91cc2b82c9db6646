"""The loader's stored series statistics (`series_stats`, `series_gap`) against the full
scans they replaced (`tests.series_oracle`), on SQLite and PostgreSQL: after every batch of
generated series (gaps, off-grid bars, re-loads, updates, out-of-order chunks, late bars,
two series in one batch), after the real files, and after the migration that computes
them for bars already stored. The quality report built from them equals, dict for dict, the
one the full scan gave."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, event, text

from etl.core.settings import Settings, get_settings
from etl.db.engine import create_db_engine, migrate, write_transaction
from etl.db.upgrade import alembic_config
from etl.load.writer import open_candle_writer
from etl.read.series import series_profile, series_window, window_query
from tests import series_oracle
from tests.databases import REAL, postgres_schema
from tests.helpers import rows_read, run_csv

ROOT = Path(__file__).resolve().parents[3]
MINUTE = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE
NOW = T0 + 400 * MINUTE
NAN = math.nan
# (volume, volume_quote): zero-volume means coalesce(volume, volume_quote) = 0
VOLUMES = [(1.0, NAN), (0.0, NAN), (NAN, 0.0), (NAN, NAN), (NAN, 2.0), (0.0, 5.0), (2.0, 0.0)]
_sources = itertools.count()


def frame_of(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    """Writer rows from (asset, open time, volume choice)."""
    volume = np.array([VOLUMES[v] for _, _, v in rows], dtype=np.float64).reshape(-1, 2)
    return pd.DataFrame(
        {
            "asset_id": [a for a, _, _ in rows],
            "open_time": np.array([t for _, t, _ in rows], dtype=np.int64),
            "open": 10.0,
            "high": 12.0,
            "low": 9.0,
            "close": [11.0 + v for _, _, v in rows],
            "volume": volume[:, 0],
            "volume_quote": volume[:, 1],
        }
    )


def write_batch(engine: Engine, source: str, chunks: list[pd.DataFrame]) -> int:
    """One batch through the dialect's writer; returns the rows it counted inserted."""
    with write_transaction(engine) as conn:
        writer = open_candle_writer(conn, source=source, interval="1m", batch_id=1, now_ms=NOW)
        try:
            for chunk in chunks:
                writer.add(chunk)
            inserted = writer.finish().inserted
        finally:
            writer.close()
    return inserted


def candle_count(engine: Engine, source: str) -> int:
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM candle WHERE source = :s")
        return int(conn.execute(query, {"s": source}).scalar_one())


# A row: (asset 1 or 2, minute slot or half-minute slot (off the grid), volume choice).
# Slots cover 0-239 minutes so that batches overlap, extend, fill and re-load each other.
on_grid = st.tuples(st.sampled_from([1, 2]), st.integers(0, 239).map(lambda s: T0 + s * MINUTE))
off_grid = st.tuples(
    st.sampled_from([1, 2]), st.integers(0, 239).map(lambda s: T0 + s * MINUTE + 30_000)
)
row = st.tuples(
    st.one_of(on_grid, on_grid, on_grid, off_grid), st.integers(0, len(VOLUMES) - 1)
).map(lambda r: (r[0][0], r[0][1], r[1]))
batch = st.tuples(
    st.lists(row, min_size=1, max_size=80, unique_by=lambda r: (r[0], r[1])),
    st.integers(1, 30),  # chunk size: several chunks, in the list's (random) order
)
runs = st.lists(batch, min_size=1, max_size=5)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=runs, contiguous=st.booleans())
def test_stored_statistics_equal_a_full_scan_after_every_batch(
    engine: Engine, batches: list[tuple[list[tuple[int, int, int]], int]], contiguous: bool
) -> None:
    source = f"h{next(_sources)}"
    for rows, size in batches:
        if contiguous:  # appends and prepends in order: the fresh-span path
            rows = sorted(rows, key=lambda r: (r[0], r[1]))
        before = candle_count(engine, source)
        chunks = [frame_of(rows[i : i + size]) for i in range(0, len(rows), size)]
        inserted = write_batch(engine, source, chunks)
        assert inserted == candle_count(engine, source) - before
        assert series_oracle.assert_stored_equals_full_scan(engine, source) >= 1


def test_late_bars_and_a_reload_in_one_batch(engine: Engine) -> None:
    """A worked case: a stored series with a gap, then a batch that re-loads stored bars
    with new volumes, fills part of the gap, and appends, in three out-of-order chunks."""
    source = f"h{next(_sources)}"
    first = [(1, T0 + m * MINUTE, 0) for m in (*range(0, 10), *range(20, 30))]
    write_batch(engine, source, [frame_of(first)])
    with engine.connect() as conn:
        assert series_oracle.stored(conn, (1, source, "1m")) == {
            "bars": 20,
            "first_open": T0,
            "last_open": T0 + 29 * MINUTE,
            "zero_volume_bars": 0,
            "gap_count": 1,
            "missing_bars": 10,
            "gaps": [(T0 + 9 * MINUTE, T0 + 20 * MINUTE)],
        }
    appended = frame_of([(1, T0 + m * MINUTE, 1) for m in (31, 32)])
    reloaded = frame_of([(1, T0 + m * MINUTE, 1) for m in (3, 4, 25)])  # now zero volume
    filled = frame_of([(1, T0 + m * MINUTE, 0) for m in (12, 13)])
    assert write_batch(engine, source, [appended, reloaded, filled]) == 4
    with engine.connect() as conn:
        assert series_oracle.stored(conn, (1, source, "1m")) == {
            "bars": 24,
            "first_open": T0,
            "last_open": T0 + 32 * MINUTE,
            "zero_volume_bars": 5,
            "gap_count": 3,
            "missing_bars": 2 + 6 + 1,
            "gaps": [
                (T0 + 9 * MINUTE, T0 + 12 * MINUTE),
                (T0 + 13 * MINUTE, T0 + 20 * MINUTE),
                (T0 + 29 * MINUTE, T0 + 31 * MINUTE),
            ],
        }
    assert series_oracle.assert_stored_equals_full_scan(engine, source) == 1


def test_real_files_then_late_halves_and_the_migration_backfill(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """The real files (tests/data/real, data/raw) through the pipeline; then a minute file
    loaded newest half first (the older half arrives late); then the migration's own
    computation for bars already stored, from scratch."""
    files = sorted(REAL.glob("*.csv")) + sorted((ROOT / "data" / "raw").glob("*.csv"))
    summary = run_csv(settings, engine, files)
    assert summary.status in ("success", "partial"), summary.error
    minute = (REAL / "bitstampUSD_1-min_data_slice.csv").read_text().splitlines(keepends=True)
    header, body = minute[0], minute[1:20_001]  # 20,000 minutes are enough
    halves = [tmp_path / "newer.csv", tmp_path / "older.csv"]
    halves[0].write_text(header + "".join(body[len(body) // 2 :]))
    halves[1].write_text(header + "".join(body[: len(body) // 2 + 5]))  # overlaps by 5
    for half in halves:
        assert run_csv(settings, engine, [half], default_symbol="ETHUSD").status == "success"
    assert series_oracle.assert_stored_equals_full_scan(engine) >= 10
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "-1")
    with engine.begin() as conn:
        assert "series_stats" not in {
            r[0] for r in conn.execute(text(_TABLES[engine.dialect.name])).all()
        }
    migrate(engine)
    assert series_oracle.assert_stored_equals_full_scan(engine) >= 10


_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
}


def test_the_derived_stage_and_an_append_read_bounded_index_ranges() -> None:
    """PostgreSQL's EXPLAIN ANALYZE counts the candle rows each statement really read: the
    derived stage reads the metrics' window and nothing more, and appending 100 bars to a
    series of 100,000 reads about 100 (the tracker's range reads and neighbour seeks)."""
    with postgres_schema("derived") as url:
        engine = create_db_engine(get_settings(database_url=url, _env_file=None))
        migrate(engine)
        source = "big"
        history = [(1, T0 + m * MINUTE, m % 3) for m in range(100_000)]
        write_batch(
            engine, source, [frame_of(history[i : i + 25_000]) for i in range(0, 100_000, 25_000)]
        )
        with engine.connect() as conn:
            conn.execute(text("ANALYZE candle"))
            conn.commit()
        statements: list[tuple[str, Any]] = []

        @event.listens_for(engine, "before_cursor_execute")
        def keep(*args: Any) -> None:
            statements.append((args[2], args[3]))

        appended = [(1, T0 + m * MINUTE, 0) for m in range(100_005, 100_105)]  # after a gap
        write_batch(engine, source, [frame_of(appended)])
        load_statements = list(statements)
        statements.clear()
        key = (1, source, "1m")
        with engine.connect() as conn:
            profile = series_profile(conn, key)
            window = series_window(conn, key)
            # series_window reads through the raw cursor (no statement event): its query
            compiled = window_query(key).compile(conn, compile_kwargs={"literal_binds": True})
        derived_statements = [*statements, (str(compiled), {})]
        event.remove(engine, "before_cursor_execute", keep)
        with engine.connect() as conn:
            load_read = _candle_rows_read(conn, load_statements)
            derived_read = _candle_rows_read(conn, derived_statements)
        engine.dispose()
    assert profile is not None and profile.bars == 100_100 and profile.gap_count == 1
    assert len(window) == 31 * 1440 + 1
    assert load_read <= 300, load_read  # not the 100,000 stored
    assert derived_read <= len(window) + 10, derived_read


def _candle_rows_read(conn: Connection, statements: list[tuple[str, Any]]) -> int:
    total = 0
    for statement, parameters in statements:
        if not statement.lstrip().upper().startswith("SELECT"):
            continue
        explained = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
        total += rows_read(explained.scalar_one()[0]["Plan"], "candle")
    return total
