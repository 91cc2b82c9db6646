"""The venues' latest tickers of an asset, and the consolidated price over them (what
`/latest` will serve; `etl.transform.consolidate` holds the rules)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Connection, and_, func, select, type_coerce

from etl.db.models import Ticker
from etl.transform.consolidate import (
    ConsolidatedPrice,
    ConsolidationRules,
    VenueQuote,
    consolidated_price,
)

RAW_OBSERVED_AT = type_coerce(Ticker.observed_at, BigInteger)  # epoch ms


def latest_venue_quotes(conn: Connection, asset_id: int) -> list[VenueQuote]:
    """Each source's newest ticker of the asset (one per venue, stale ones included: the
    consolidation says why it leaves them out). An index range scan per source."""
    newest = (
        select(Ticker.source, func.max(RAW_OBSERVED_AT).label("at"))
        .where(Ticker.asset_id == asset_id)
        .group_by(Ticker.source)
        .subquery()
    )
    query = (
        select(
            Ticker.source,
            Ticker.bid,
            Ticker.ask,
            Ticker.last,
            Ticker.volume_base_24h,
            RAW_OBSERVED_AT,
            Ticker.volume_quote_24h,
        )
        .join(newest, and_(Ticker.source == newest.c.source, newest.c.at == RAW_OBSERVED_AT))
        .where(Ticker.asset_id == asset_id)
        .order_by(Ticker.source)
    )
    return [
        VenueQuote(source, bid, ask, last, volume, int(observed), volume_quote)
        for source, bid, ask, last, volume, observed, volume_quote in conn.execute(query)
    ]


def consolidated_for(
    conn: Connection, asset_id: int, *, now_ms: int, rules: ConsolidationRules
) -> ConsolidatedPrice:
    return consolidated_price(latest_venue_quotes(conn, asset_id), now_ms=now_ms, rules=rules)
