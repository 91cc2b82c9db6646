"""Assets as the API names them: every stored asset, and any alias resolved to one."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Connection, and_, case, func, or_, select

from etl.core.assets import AssetRegistry
from etl.core.errors import UnknownAssetError
from etl.db.models import Asset


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
        select(Asset.id, Asset.symbol, Asset.base, Asset.quote, Asset.name, Asset.coin_id).order_by(
            Asset.symbol
        )
    ).all()
    return [AssetRow(*row) for row in rows]


@lru_cache(maxsize=1)
def _registry() -> AssetRegistry:
    return AssetRegistry()  # only seeded coins; resolve() never adds to it


def resolve_asset(conn: Connection, text: str) -> AssetRow:
    """Any alias (`bitcoin`, `BTC`, `btc-usd`, `BTCUSD`, `BTC/USD`) to a stored asset.

    Exact matches rank first: the canonical symbol, then the known coin's own base, then
    any other asset's coin id or base (a stored row can never take over a known alias).
    """
    ref = _registry().resolve(text, strict=False)
    wanted = ref.symbol if ref else text.replace("-", "").replace("/", "").upper()
    lowered = text.strip().lower()
    known_base = ref.base if ref else None
    rank = case(
        (Asset.symbol == wanted, 0),
        (and_(Asset.quote == "USD", Asset.base == known_base), 1),
        else_=2,
    )
    row = conn.execute(
        select(Asset.id, Asset.symbol, Asset.base, Asset.quote, Asset.name, Asset.coin_id)
        .where(
            or_(
                Asset.symbol == wanted,
                and_(Asset.quote == "USD", func.lower(Asset.coin_id) == lowered),
                and_(Asset.quote == "USD", func.lower(Asset.base) == lowered),
            )
        )
        .order_by(rank, Asset.symbol)
        .limit(1)
    ).first()
    if row is None:
        raise UnknownAssetError(text)
    return AssetRow(*row)


def selected_assets(conn: Connection, symbols: str | None) -> list[AssetRow]:
    """The assets named by a `symbols=` filter (every alias must exist), else all."""
    if not symbols:
        return list_assets(conn)
    chosen: dict[int, AssetRow] = {}
    for text in symbols.split(","):
        asset = resolve_asset(conn, text)
        chosen[asset.id] = asset
    return list(chosen.values())
