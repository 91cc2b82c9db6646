"""The venues' latest tickers read back and consolidated, on both databases."""

from __future__ import annotations

from sqlalchemy import Engine

from etl.core.assets import AssetRef
from etl.db.engine import write_transaction
from etl.load.writer import ensure_asset, insert_ticker
from etl.read.venues import consolidated_for, latest_venue_quotes
from etl.transform.consolidate import ConsolidationRules

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
