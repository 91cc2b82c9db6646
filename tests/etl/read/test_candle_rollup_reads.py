"""A candle page or an export's range check reads a bounded slice of the stored bars or
their rollups, whatever the series' length: PostgreSQL's EXPLAIN ANALYZE counts the rows
each statement really read."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Select, event, text

from etl.core.settings import get_settings
from etl.db.engine import create_db_engine, migrate
from etl.read import candles
from etl.read.candles import candle_page, candle_span
from etl.read.rows import fetch_tuples
from tests.databases import postgres_schema
from tests.etl.read.rollup_checks import minute_bars, write_bars

T0 = 1_700_000_000_000 // 604_800_000 * 604_800_000 + 4 * 86_400_000  # a Monday 00:00
BARS = 200_000  # minutes: 20 weeks
TABLES = ("candle", "candle_rollup")


def _rows_read(plan: dict[str, Any]) -> int:
    """Rows the plan's nodes on candle and candle_rollup returned, summed over loops."""
    own = plan["Actual Rows"] * plan["Actual Loops"] if plan.get("Relation Name") in TABLES else 0
    return own + sum(_rows_read(child) for child in plan.get("Plans", []))


def _explained(engine: Engine, monkeypatch: pytest.MonkeyPatch, call: Any) -> tuple[Any, list[int]]:
    """`call(conn)`'s result and the rows each of its statements read (those sent through
    SQLAlchemy, and the page reads that `fetch_tuples` sends to the driver itself)."""
    statements: list[tuple[str, Any]] = []

    def keep(*args: Any) -> None:
        statements.append((args[2], args[3]))

    def fetch(conn: Connection, query: Select[Any]) -> list[tuple[Any, ...]]:
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        statements.append((str(compiled), {}))
        return fetch_tuples(conn, query)

    monkeypatch.setattr(candles, "fetch_tuples", fetch)
    event.listen(engine, "before_cursor_execute", keep)
    try:
        with engine.connect() as conn:
            result = call(conn)
    finally:
        event.remove(engine, "before_cursor_execute", keep)
        monkeypatch.undo()
    read = []
    with engine.connect() as conn:
        for statement, parameters in statements:
            plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
            read.append(_rows_read(plan.scalar_one()[0]["Plan"]))
    return result, read


def test_pages_and_spans_read_limit_times_the_interval_ratio_rows_at_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with postgres_schema("reads") as url:
        engine = create_db_engine(get_settings(database_url=url, _env_file=None))
        migrate(engine)
        write_bars(engine, minute_bars(BARS, start_ms=T0, seed=4))
        with engine.begin() as conn:
            conn.execute(text("ANALYZE candle"))
            conn.execute(text("ANALYZE candle_rollup"))
        key: dict[str, Any] = {"asset_id": 1, "source": "test", "stored": "1m", "end_ms": 2**62}
        cases = [
            # (interval, start, limit, rows one statement may read, what it is read from)
            ("1w", 0, 1, 2, "the weekly rollup"),
            ("1d", 0, 5, 6, "the daily rollup"),
            ("1h", 0, 500, 501, "the hourly rollup"),
            ("12h", 0, 10, 11, "the 12h rollup"),
            ("5m", 0, 100, 101 * 5, "stored minutes (5 per bar)"),
            ("1m", 0, 500, 501, "stored minutes"),
            # A start inside a week: that week's share comes from the stored minutes.
            ("1w", T0 + 3 * 86_400_000 + 60_000, 1, 4 * 1440, "the cut week's minutes"),
        ]
        for interval, start, limit, bound, what in cases:
            page, read = _explained(
                engine,
                monkeypatch,
                lambda conn, i=interval, s=start, n=limit: candle_page(
                    conn, **key, interval=i, start_ms=s, limit=n
                ),
            )
            assert len(page) == limit + 1, interval
            assert read and max(read) <= bound, (interval, what, read)
        # Before rollups, the 1w page of one bar read all 200,000 minutes.
        span, read = _explained(
            engine,
            monkeypatch,
            lambda conn: candle_span(conn, **key, interval="1m", start_ms=0, at_most=1_000),
        )
        assert span is not None and span[0] == 1_001  # "more than 1,000"
        assert max(read) <= 1_001, read
        span, read = _explained(
            engine,
            monkeypatch,
            lambda conn: candle_span(conn, **key, interval="1h", start_ms=0, at_most=10_000),
        )
        assert span == (BARS // 60 + (BARS % 60 > 0), T0, T0 + (BARS - 1) // 60 * 3_600_000)
        assert max(read) <= 10_001, read
        engine.dispose()
