"""Which Gemini pair stands for each coin of `COIN_IDS`: shared by the REST source
(`etl.sources.gemini`) and the stream worker (`etl.stream`), so both follow the same pairs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from etl.core.assets import AssetRef
from etl.extract.gemini_models import GeminiSymbol

QUOTE_PREFERENCE = ("USD", "GUSD", "USDT", "USDC")


@dataclass(frozen=True)
class Selection:
    coin: str
    asset: AssetRef
    symbol: GeminiSymbol


def select_pairs(
    coins: list[str], listed: list[GeminiSymbol], resolve: Callable[[str], AssetRef | None]
) -> tuple[list[Selection], dict[str, str]]:
    """A spot pair per coin from the live list (USD first); the rest with a reason."""
    by_base: dict[str, list[GeminiSymbol]] = {}
    for symbol in listed:
        if not symbol.perpetual:
            by_base.setdefault(symbol.base, []).append(symbol)
    chosen: list[Selection] = []
    skipped: dict[str, str] = {}
    for coin in coins:
        asset = resolve(coin)
        if asset is None:
            skipped[coin] = "unknown coin id"
            continue
        pairs = {s.quote: s for s in by_base.get(asset.base, [])}
        quote = next((q for q in (asset.quote, *QUOTE_PREFERENCE) if q in pairs), None)
        if quote is None:
            skipped[coin] = f"Gemini lists no {asset.base} pair"
            continue
        pair = pairs[quote]
        chosen.append(Selection(coin, AssetRef(asset.base, quote, asset.name, asset.coin_id), pair))
    return chosen, skipped
