"""Read queries the HTTP API serves from (SQLAlchemy Core, parameterised, index-friendly).

A **series** is (asset, source, interval). An asset's *preferred* series is the one with
the newest bar; on a tie the finest interval wins. Latest values come from the `metric`
table (one small row per series and run), never from scanning `candle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, Connection, and_, func, or_, select, type_coerce

from etl.assets import AssetRegistry
from etl.errors import UnknownAssetError
from etl.intervals import INTERVAL_MS
from etl.models import Asset, Candle, EtlRun, Metric, QualityReport, Ticker, to_epoch_ms
from etl.queries import RAW_OPEN_TIME


def _plain(row: Any) -> dict[str, Any]:
    """A result mapping with every timestamp as epoch ms (the API's one representation)."""
    return {k: to_epoch_ms(v) if isinstance(v, datetime) else v for k, v in dict(row).items()}


@dataclass(frozen=True)
class AssetRow:
    id: int
    symbol: str
    base: str
    quote: str
    name: str
    coin_id: str

    @property
    def aliases(self) -> list[str]:
        pair = [f"{self.base}-{self.quote}", f"{self.base}/{self.quote}", self.symbol.lower()]
        bare = [self.base, self.coin_id] if self.quote == "USD" else []
        return sorted({*pair, *bare, self.symbol})


def list_assets(conn: Connection) -> list[AssetRow]:
    rows = conn.execute(
        select(Asset.id, Asset.symbol, Asset.base, Asset.quote, Asset.name, Asset.coin_id)
        .order_by(Asset.symbol)
    ).all()  # fmt: skip
    return [AssetRow(*row) for row in rows]


@lru_cache(maxsize=1)
def _registry() -> AssetRegistry:
    return AssetRegistry()  # only seeded coins; resolve() never adds to it


def resolve_asset(conn: Connection, text: str) -> AssetRow:
    """Any alias (`bitcoin`, `BTC`, `btc-usd`, `BTCUSD`, `BTC/USD`) to a stored asset."""
    ref = _registry().resolve(text, strict=False)
    wanted = ref.symbol if ref else text.replace("-", "").replace("/", "").upper()
    lowered = text.strip().lower()
    row = conn.execute(
        select(Asset.id, Asset.symbol, Asset.base, Asset.quote, Asset.name, Asset.coin_id)
        .where(
            or_(
                Asset.symbol == wanted,
                and_(Asset.quote == "USD", func.lower(Asset.coin_id) == lowered),
                and_(Asset.quote == "USD", func.lower(Asset.base) == lowered),
            )
        )
        .order_by(Asset.symbol)
        .limit(1)
    ).first()
    if row is None:
        raise UnknownAssetError(text)
    return AssetRow(*row)


def _metric_columns() -> list[Any]:
    return [c for c in Metric.__table__.c if c.name not in ("run_id",)]


def latest_metrics(conn: Connection, asset_id: int) -> list[dict[str, Any]]:
    """The newest metric row of each series of the asset, preferred series first."""
    table = Metric.__table__
    newest = (
        select(table.c.source, table.c.interval, func.max(table.c.as_of).label("as_of"))
        .where(table.c.asset_id == asset_id)
        .group_by(table.c.source, table.c.interval)
        .subquery()
    )
    rows = conn.execute(
        select(*_metric_columns()).join(
            newest,
            and_(
                table.c.asset_id == asset_id,
                table.c.source == newest.c.source,
                table.c.interval == newest.c.interval,
                table.c.as_of == newest.c.as_of,
            ),
        )
    ).mappings().all()  # fmt: skip
    found = [_plain(r) for r in rows]
    found.sort(key=lambda m: (-int(m["as_of"]), INTERVAL_MS.get(m["interval"], 0)))
    return found


def latest_ticker(conn: Connection, asset_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        select(
            type_coerce(Ticker.observed_at, BigInteger).label("observed_at"), Ticker.source,
            Ticker.bid, Ticker.ask, Ticker.last, Ticker.volume_base_24h, Ticker.volume_quote_24h,
        )
        .where(Ticker.asset_id == asset_id)
        .order_by(Ticker.observed_at.desc(), Ticker.id.desc())
        .limit(1)
    ).mappings().first()  # fmt: skip
    return dict(row) if row else None


def series_coverage(conn: Connection, asset_id: int) -> list[dict[str, Any]]:
    """First and last bar and count per series of the asset (min/max use the key index)."""
    series = conn.execute(
        select(Metric.source, Metric.interval).where(Metric.asset_id == asset_id).distinct()
    ).all()
    coverage = []
    for source, interval in series:
        first, last, bars = conn.execute(
            select(func.min(RAW_OPEN_TIME), func.max(RAW_OPEN_TIME), func.count()).where(
                Candle.asset_id == asset_id, Candle.source == source, Candle.interval == interval
            )
        ).one()
        if bars:
            coverage.append(
                {"source": source, "interval": interval, "first_open": int(first),
                 "last_open": int(last), "bars": int(bars)}
            )  # fmt: skip
    return sorted(coverage, key=lambda c: (c["source"], INTERVAL_MS[c["interval"]]))


def latest_quality(conn: Connection, asset_id: int | None = None) -> list[dict[str, Any]]:
    q = QualityReport.__table__
    newest = select(func.max(q.c.id)).group_by(q.c.asset_id, q.c.source, q.c.interval)
    if asset_id is not None:
        newest = newest.where(q.c.asset_id == asset_id)
    rows = conn.execute(
        select(q, Asset.symbol)
        .join(Asset, Asset.id == q.c.asset_id)
        .where(q.c.id.in_(newest.scalar_subquery()))
        .order_by(Asset.symbol, q.c.source, q.c.interval)
    ).mappings().all()  # fmt: skip
    return [_plain(r) for r in rows]


def list_runs(conn: Connection, limit: int) -> list[dict[str, Any]]:
    table = EtlRun.__table__
    rows = conn.execute(select(table).order_by(table.c.started_at.desc()).limit(limit))
    return [_plain(r) for r in rows.mappings().all()]


def get_run(conn: Connection, run_id: str) -> dict[str, Any] | None:
    table = EtlRun.__table__
    row = conn.execute(select(table).where(table.c.id == run_id)).mappings().first()
    return _plain(row) if row else None


def schema_ok(conn: Connection) -> bool:
    conn.execute(select(func.count()).select_from(EtlRun.__table__).limit(1))
    return True
