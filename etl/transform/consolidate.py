"""One consolidated price per asset and quote from several venues' tickers (pure).

For each venue's ticker, in this order:

1. **Price**: the mid `(bid + ask) / 2` when both are positive and not crossed, else the
   last trade price; neither -> the venue is not used (`no_price`).
2. **Fresh**: its age `now - observed_at` must be at most `max_age_ms`
   (`CONSOLIDATE_MAX_AGE_SECONDS`, counted from when the quote was observed); an older quote,
   or one stamped further than that in the future, is not used (`stale`).
3. **Outliers** (only with 3 or more fresh venues: with two, neither can be told wrong):
   `m` is the plain median of the fresh prices and `MAD` the median of `|p - m|`; a venue
   with `|p - m| > k * max(MAD, 1e-4 * m)` is not used (`outlier`, `k` = `CONSOLIDATE_MAD_K`).
   The floor of one basis point of `m` keeps venues that agree almost exactly (MAD 0) from
   dropping a neighbour a cent away.
4. **Weighted median** of the remaining prices, weighted by 24h base volume, when at least
   `min_sources` (`CONSOLIDATE_MIN_SOURCES`) remain. A venue that reports no volume (or
   zero) weighs as much as the lightest venue that does; when none does, all weigh 1.
5. Otherwise **fallback**: the freshest single remaining venue (ties: more volume, then the
   venue id), with `method = "single_source_fallback"` so callers can say so. No fresh
   venue with a price: no price (`method = None`).

Weighted median, precisely: sort the prices ascending (ties by weight, then venue id, so the
input order never matters); with `W` the total weight, take the first price whose cumulative
weight reaches `W / 2`; if the cumulative weight there equals `W / 2` exactly (the weight is
split evenly around it), take the midpoint of that price and the next one. With equal weights
this is the ordinary median (the mean of the two middle prices for an even count).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from etl.core.settings import Settings

Method = Literal["weighted_median", "single_source_fallback"]
Reason = Literal["stale", "no_price", "outlier", "not_freshest"]
MAD_FLOOR = 1e-4  # of the median: quotes within k basis points are never outliers
MIN_FOR_OUTLIERS = 3


@dataclass(frozen=True)
class VenueQuote:
    """One venue's latest ticker for the asset and quote (epoch ms UTC)."""

    source: str
    bid: float | None
    ask: float | None
    last: float | None
    volume_24h: float | None  # in the base currency, comparable across venues
    observed_at: int
    volume_quote_24h: float | None = None  # reported beside it, not used to weigh


@dataclass(frozen=True)
class VenueVerdict:
    source: str
    price: float | None
    weight: float
    used: bool
    reason: Reason | None = None


@dataclass(frozen=True)
class ConsolidatedPrice:
    price: float | None
    method: Method | None
    sources_used: tuple[str, ...]
    venues: tuple[VenueVerdict, ...]  # every venue given, sorted by id
    as_of: int | None  # the newest observation among the venues used


@dataclass(frozen=True)
class ConsolidationRules:
    max_age_ms: int
    mad_k: float
    min_sources: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsolidationRules:
        return cls(
            max_age_ms=int(settings.consolidate_max_age_seconds * 1000),
            mad_k=settings.consolidate_mad_k,
            min_sources=settings.consolidate_min_sources,
        )


def venue_price(quote: VenueQuote) -> float | None:
    """The mid when the book side is usable, else the last trade; None if neither is."""
    bid, ask = _positive(quote.bid), _positive(quote.ask)
    if bid is not None and ask is not None and bid <= ask:
        return (bid + ask) / 2
    return _positive(quote.last)


def weighted_median(points: Iterable[tuple[float, float]]) -> float:
    """The weighted median of (price, weight) pairs, weights positive (module docstring)."""
    ordered = sorted(points)
    if not ordered:
        raise ValueError("weighted median of nothing")
    half = math.fsum(w for _, w in ordered) / 2
    cumulative = 0.0
    for i, (price, weight) in enumerate(ordered):
        cumulative += weight
        if cumulative == half and i + 1 < len(ordered):
            return (price + ordered[i + 1][0]) / 2
        if cumulative >= half:
            return price
    return ordered[-1][0]  # float rounding left the sum a hair under half


def consolidated_price(
    quotes: Iterable[VenueQuote], *, now_ms: int, rules: ConsolidationRules
) -> ConsolidatedPrice:
    """The consolidated price of one asset and quote from its venues' latest tickers (one
    quote per venue)."""
    given = sorted(quotes, key=lambda q: q.source)
    if len({q.source for q in given}) != len(given):
        raise ValueError("one quote per venue: take each venue's latest ticker")
    verdicts: dict[str, VenueVerdict] = {}
    fresh: list[tuple[VenueQuote, float]] = []
    for quote in given:
        price = venue_price(quote)
        if price is None:
            verdicts[quote.source] = VenueVerdict(quote.source, None, 0.0, False, "no_price")
        elif abs(now_ms - quote.observed_at) > rules.max_age_ms:
            verdicts[quote.source] = VenueVerdict(quote.source, price, 0.0, False, "stale")
        else:
            fresh.append((quote, price))
    kept = _drop_outliers(fresh, rules.mad_k, verdicts)
    weights = _weights([q for q, _ in kept])
    if len(kept) >= rules.min_sources:
        price = weighted_median((p, weights[q.source]) for q, p in kept)
        used = [q for q, _ in kept]
        method: Method | None = "weighted_median"
    elif kept:
        freshest = max(kept, key=lambda qp: (qp[0].observed_at, weights[qp[0].source]))
        # max() keeps the first of equals: kept is sorted by venue id
        price, used, method = freshest[1], [freshest[0]], "single_source_fallback"
        for quote, other in kept:
            if quote is not freshest[0]:
                verdicts[quote.source] = VenueVerdict(
                    quote.source, other, weights[quote.source], False, "not_freshest"
                )
    else:
        return ConsolidatedPrice(None, None, (), _ordered(verdicts), None)
    for quote in used:
        verdicts[quote.source] = VenueVerdict(
            quote.source, venue_price(quote), weights[quote.source], True
        )
    return ConsolidatedPrice(
        price=price,
        method=method,
        sources_used=tuple(sorted(q.source for q in used)),
        venues=_ordered(verdicts),
        as_of=max(q.observed_at for q in used),
    )


def _drop_outliers(
    fresh: list[tuple[VenueQuote, float]], k: float, verdicts: dict[str, VenueVerdict]
) -> list[tuple[VenueQuote, float]]:
    if len(fresh) < MIN_FOR_OUTLIERS:
        return fresh
    prices = [p for _, p in fresh]
    middle = _median(prices)
    spread = max(_median([abs(p - middle) for p in prices]), MAD_FLOOR * middle)
    kept = []
    for quote, price in fresh:
        if abs(price - middle) > k * spread:
            verdicts[quote.source] = VenueVerdict(quote.source, price, 0.0, False, "outlier")
        else:
            kept.append((quote, price))
    return kept


def _weights(quotes: list[VenueQuote]) -> dict[str, float]:
    reported = {q.source: v for q in quotes if (v := _positive(q.volume_24h)) is not None}
    floor = min(reported.values(), default=1.0)
    return {q.source: reported.get(q.source, floor) for q in quotes}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def _positive(value: float | None) -> float | None:
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _ordered(verdicts: dict[str, VenueVerdict]) -> tuple[VenueVerdict, ...]:
    return tuple(verdicts[source] for source in sorted(verdicts))
