"""Which of a venue's markets stand for each coin of `COIN_IDS`: every active spot market
of the coin against a quote of `QUOTES`, in ccxt's unified symbols (Kraken's XBT is BTC).

USDT and USDC are quotes of their own: a coin listed only against USDT is polled only when
`QUOTES` names USDT, and its rows belong to the `BTCUSDT` asset, never to `BTCUSD`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from etl.core.assets import AssetRef
from etl.extract.ccxt_client import VenueMarket


@dataclass(frozen=True)
class VenuePair:
    coin: str
    asset: AssetRef  # the coin against this market's quote
    market: VenueMarket


def select_venue_pairs(
    venue: str,
    coins: list[str],
    markets: list[VenueMarket],
    quotes: list[str],
    resolve: Callable[[str], AssetRef | None],
) -> tuple[list[VenuePair], dict[str, str]]:
    """The pairs to poll, in `COIN_IDS` then `QUOTES` order; the coins with none, and why."""
    by_pair = {(m.base, m.quote): m for m in markets}
    chosen: list[VenuePair] = []
    skipped: dict[str, str] = {}
    for coin in coins:
        asset = resolve(coin)
        if asset is None:
            skipped[coin] = "unknown coin id"
            continue
        listed = [by_pair[(asset.base, q)] for q in quotes if (asset.base, q) in by_pair]
        active = [m for m in listed if m.active]
        if not active:
            quoted = "/".join(quotes)
            state = "no active" if listed else "no"
            skipped[coin] = f"{venue} lists {state} {asset.base} spot pair in {quoted}"
            continue
        chosen.extend(
            VenuePair(coin, AssetRef(asset.base, m.quote, asset.name, asset.coin_id), m)
            for m in active
        )
    return chosen, skipped
