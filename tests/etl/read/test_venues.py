"""The venues' latest tickers read back and consolidated, on both databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event, insert, text

from etl.core.assets import AssetRef
from etl.core.settings import get_settings
from etl.db.engine import create_db_engine, migrate, write_transaction
from etl.db.models import Ticker
from etl.load.writer import ensure_asset, insert_ticker
from etl.read.venues import consolidated_for, latest_venue_quotes
from etl.transform.consolidate import ConsolidationRules
from tests.databases import postgres_schema
from tests.helpers import rows_read

NOW = 1_750_000_000_000
BTC = AssetRef("BTC", "USD", "Bitcoin", "bitcoin")


def test_the_newest_ticker_per_venue_is_consolidated(engine: Engine) -> None:
    snapshots = [
        ("kraken", NOW - 300_000, 90.0),  # an older snapshot of kraken: not read
        ("kraken", NOW - 5_000, 100.0),
        ("bitstamp", NOW - 2_000, 100.2),
        ("coinbase", NOW - 1_000, 100.1),
        ("gemini", NOW - 600_000, 50.0),  # stale
    ]
    with write_transaction(engine) as conn:
        asset_id = ensure_asset(conn, BTC)
        for source, at, price in snapshots:
            insert_ticker(
                conn,
                asset_id=asset_id,
                source=source,
                observed_at=at,
                bid=price - 0.05,
                ask=price + 0.05,
                last=price,
                volume_base_24h=10.0,
                volume_quote_24h=None,
                raw=None,
                run_id=None,
            )
    rules = ConsolidationRules(max_age_ms=120_000, mad_k=5.0, min_sources=2)
    with engine.connect() as conn:
        quotes = latest_venue_quotes(conn, asset_id)
        result = consolidated_for(conn, asset_id, now_ms=NOW, rules=rules)
    assert [(q.source, q.last, q.observed_at) for q in quotes] == [
        ("bitstamp", 100.2, NOW - 2_000),
        ("coinbase", 100.1, NOW - 1_000),
        ("gemini", 50.0, NOW - 600_000),
        ("kraken", 100.0, NOW - 5_000),
    ]
    assert result.method == "weighted_median"
    assert result.price is not None and abs(result.price - 100.1) < 1e-9
    assert result.sources_used == ("bitstamp", "coinbase", "kraken")
    assert {v.source: v.reason for v in result.venues}["gemini"] == "stale"


def test_the_latest_quotes_seek_the_index_instead_of_reading_every_ticker() -> None:
    """The stream writes a ticker per pair per second: the read must not grow with them.
    PostgreSQL's EXPLAIN ANALYZE counts the ticker rows the query really read."""
    with postgres_schema("venues") as url:
        engine = create_db_engine(get_settings(database_url=url, _env_file=None))
        migrate(engine)
        with write_transaction(engine) as conn:
            asset_id = ensure_asset(conn, BTC)
            conn.execute(
                insert(Ticker),
                [
                    {"asset_id": asset_id, "source": source, "observed_at": NOW - i * 1000}
                    | {"last": 100.0 + i % 5, "run_id": None}
                    for source in ("bitstamp", "gemini", "kraken")
                    for i in range(30_000)
                ],
            )
        statements: list[tuple[str, Any]] = []

        @event.listens_for(engine, "before_cursor_execute")
        def keep(*args: Any) -> None:
            statements.append((args[2], args[3]))

        with engine.connect() as conn:
            conn.execute(text("ANALYZE ticker"))
            quotes = latest_venue_quotes(conn, asset_id)
            statement, parameters = statements[-1]
            explained = conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters
            )
            plan = explained.scalar_one()[0]["Plan"]
        engine.dispose()
    assert [(q.source, q.observed_at) for q in quotes] == [
        ("bitstamp", NOW),
        ("gemini", NOW),
        ("kraken", NOW),
    ]
    assert rows_read(plan, "ticker") <= 12  # a few per source, not the 90,000 stored
