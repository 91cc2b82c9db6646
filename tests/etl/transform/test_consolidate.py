"""The consolidated price: worked examples of each rule, then properties (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.transform.consolidate import (
    ConsolidatedPrice,
    ConsolidationRules,
    VenueQuote,
    consolidated_price,
    venue_price,
    weighted_median,
)

NOW = 1_750_000_000_000
RULES = ConsolidationRules(max_age_ms=120_000, mad_k=5.0, min_sources=2)


def quote(
    source: str,
    price: float,
    *,
    volume: float | None = 10.0,
    age_ms: int = 1_000,
    half_spread: float = 0.0,
    last: float | None = None,
) -> VenueQuote:
    return VenueQuote(
        source=source,
        bid=price - half_spread,
        ask=price + half_spread,
        last=price if last is None else last,
        volume_24h=volume,
        observed_at=NOW - age_ms,
    )


def consolidate(*quotes: VenueQuote, rules: ConsolidationRules = RULES) -> ConsolidatedPrice:
    return consolidated_price(quotes, now_ms=NOW, rules=rules)


# -- examples -------------------------------------------------------------------------------


def test_weighted_median_follows_the_volume_and_splits_an_even_tie() -> None:
    assert weighted_median([(100.0, 1.0), (101.0, 1.0), (102.0, 5.0)]) == 102.0
    assert weighted_median([(100.0, 1.0), (102.0, 1.0)]) == 101.0  # even split: midpoint
    assert weighted_median([(100.0, 1.0), (101.0, 1.0), (102.0, 1.0)]) == 101.0
    assert weighted_median([(100.0, 3.0), (101.0, 1.0), (102.0, 2.0)]) == 100.5
    with pytest.raises(ValueError, match="nothing"):
        weighted_median([])


def test_the_mid_is_used_unless_the_book_is_crossed_or_missing() -> None:
    assert venue_price(quote("a", 100.0, half_spread=0.5, last=99.0)) == 100.0
    crossed = VenueQuote("a", bid=101.0, ask=100.0, last=99.5, volume_24h=1, observed_at=NOW)
    assert venue_price(crossed) == 99.5
    no_book = VenueQuote("a", bid=None, ask=100.0, last=99.0, volume_24h=1, observed_at=NOW)
    assert venue_price(no_book) == 99.0
    nothing = VenueQuote("a", bid=None, ask=None, last=0.0, volume_24h=1, observed_at=NOW)
    assert venue_price(nothing) is None


def test_three_agreeing_venues_drop_the_fourth_and_say_why() -> None:
    result = consolidate(
        quote("bitstamp", 100.0, volume=5),
        quote("coinbase", 100.2, volume=50),
        quote("kraken", 100.1, volume=20),
        quote("shady", 130.0, volume=10_000),
        quote("slow", 100.1, age_ms=121_000),
        VenueQuote("empty", None, None, None, 5.0, NOW),
    )
    assert result.method == "weighted_median"
    assert result.price == 100.2  # coinbase carries 50 of 75
    assert result.sources_used == ("bitstamp", "coinbase", "kraken")
    reasons = {v.source: v.reason for v in result.venues}
    assert reasons == {
        "bitstamp": None,
        "coinbase": None,
        "empty": "no_price",
        "kraken": None,
        "shady": "outlier",
        "slow": "stale",
    }
    assert result.as_of == NOW - 1_000


def test_too_few_venues_fall_back_to_the_freshest_and_say_so() -> None:
    result = consolidate(
        quote("kraken", 100.0, age_ms=5_000),
        quote("bitstamp", 101.0, age_ms=2_000),
        rules=ConsolidationRules(max_age_ms=120_000, mad_k=5.0, min_sources=3),
    )
    assert (result.price, result.method, result.sources_used) == (
        101.0,
        "single_source_fallback",
        ("bitstamp",),
    )
    assert {v.source: v.reason for v in result.venues}["kraken"] == "not_freshest"


def test_no_fresh_venue_means_no_price() -> None:
    result = consolidate(quote("kraken", 100.0, age_ms=600_000))
    assert (result.price, result.method, result.sources_used, result.as_of) == (
        None,
        None,
        (),
        None,
    )
    assert result.venues[0].reason == "stale"


def test_a_future_stamp_beyond_the_window_is_stale_too() -> None:
    assert consolidate(quote("kraken", 100.0, age_ms=-300_000)).venues[0].reason == "stale"


def test_venues_that_agree_exactly_keep_a_neighbour_a_cent_away() -> None:
    result = consolidate(quote("a", 100.0), quote("b", 100.0), quote("c", 100.01))
    assert result.sources_used == ("a", "b", "c")  # MAD 0; the 1bp floor keeps c


def test_a_venue_without_volume_weighs_as_much_as_the_lightest() -> None:
    result = consolidate(quote("a", 100.0, volume=2), quote("b", 102.0, volume=None))
    assert {v.source: v.weight for v in result.venues} == {"a": 2.0, "b": 2.0}
    assert result.price == 101.0


def test_two_quotes_from_one_venue_are_refused() -> None:
    with pytest.raises(ValueError, match="one quote per venue"):
        consolidate(quote("kraken", 100.0), quote("kraken", 101.0))


# -- properties -----------------------------------------------------------------------------

prices = st.floats(min_value=1e-4, max_value=1e6, allow_nan=False, allow_infinity=False)
volumes = st.one_of(st.none(), st.floats(min_value=1e-3, max_value=1e7, allow_nan=False))
fresh_ages = st.integers(min_value=-RULES.max_age_ms, max_value=RULES.max_age_ms)
names = st.lists(
    st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8),
    min_size=1,
    max_size=8,
    unique=True,
)


@st.composite
def venues(draw: st.DrawFn, *, fresh: bool = True) -> list[VenueQuote]:
    result = []
    for name in draw(names):
        price = draw(prices)
        result.append(
            VenueQuote(
                source=name,
                bid=price * (1 - draw(st.floats(0, 0.01))),
                ask=price * (1 + draw(st.floats(0, 0.01))),
                last=draw(st.one_of(st.none(), prices)),
                volume_24h=draw(volumes),
                observed_at=NOW - (draw(fresh_ages) if fresh else draw(st.integers(0, 10**9))),
            )
        )
    return result


# Honest venues of a liquid pair agree within a few basis points: here within +-0.04% of
# each other's centre. The consolidated price is always one honest price or the midpoint of
# two, so once the bad venue is dropped nothing can move it by more than that band.
HONEST_BAND = 0.0004


@settings(deadline=None)
@given(
    center=prices,
    honest=st.lists(
        st.tuples(st.floats(-HONEST_BAND, HONEST_BAND), volumes, fresh_ages),
        min_size=2,
        max_size=8,
    ),
    direction=st.sampled_from([-1, 1]),
    bad_volume=volumes,
)
def test_one_venue_off_by_20_percent_moves_the_price_less_than_a_tenth_of_a_percent(
    center: float,
    honest: list[tuple[float, float | None, int]],
    direction: int,
    bad_volume: float | None,
) -> None:
    good = [
        quote(f"v{i}", center * (1 + off), volume=volume, age_ms=age)
        for i, (off, volume, age) in enumerate(honest)
    ]
    bad = quote("bad", center * (1 + direction * 0.2), volume=bad_volume)
    clean, skewed = consolidate(*good), consolidate(*good, bad)
    assert clean.price is not None and skewed.price is not None
    assert "bad" not in skewed.sources_used
    assert abs(skewed.price - clean.price) / clean.price < 0.001


@settings(deadline=None)
@given(
    fresh=venues(),
    stale_price=prices,
    stale_volume=volumes,
    overdue_ms=st.integers(1, 10**9),
    future=st.booleans(),
)
def test_a_stale_venue_is_never_used(
    fresh: list[VenueQuote],
    stale_price: float,
    stale_volume: float | None,
    overdue_ms: int,
    future: bool,
) -> None:
    age = RULES.max_age_ms + overdue_ms
    stale = quote("zz-stale", stale_price, volume=stale_volume, age_ms=-age if future else age)
    with_stale, without = consolidate(*fresh, stale), consolidate(*fresh)
    assert "zz-stale" not in with_stale.sources_used
    [listed] = [v for v in with_stale.venues if v.source == "zz-stale"]  # venues sort by name
    assert listed.reason == "stale"
    assert (with_stale.price, with_stale.method, with_stale.sources_used) == (
        without.price,
        without.method,
        without.sources_used,
    )


@settings(deadline=None)
@given(quotes=venues(fresh=False), data=st.data())
def test_permuting_venues_changes_nothing(quotes: list[VenueQuote], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(quotes))
    assert consolidate(*shuffled) == consolidate(*quotes)


@settings(deadline=None)
@given(
    price=prices,
    half_spread=st.floats(0, 0.01),
    count=st.integers(1, 8),
    volume=volumes,
    ages=st.lists(fresh_ages, min_size=8, max_size=8),
)
def test_with_all_venues_equal_the_result_equals_them(
    price: float, half_spread: float, count: int, volume: float | None, ages: list[int]
) -> None:
    same = [
        quote(f"v{i}", price, volume=volume, age_ms=ages[i], half_spread=price * half_spread)
        for i in range(count)
    ]
    result = consolidate(*same)
    assert result.price == venue_price(same[0])
    assert len(result.sources_used) == (count if count >= RULES.min_sources else 1)


def test_the_worked_example_in_the_metrics_docs() -> None:
    """docs/metrics.md, "Worked example": the same quotes, the same verdicts and price."""
    now = 1_764_676_800_000  # 12:00:00
    quotes = [
        VenueQuote("coinbase", 67_225, 67_235, 67_231, 4_000, now - 2_000),
        VenueQuote("gemini", 67_240, 67_260, 67_255, 1_200, now - 5_000),
        VenueQuote("kraken", 67_270, 67_290, 67_282, 2_500, now - 20_000),
        VenueQuote("bitstamp", None, None, 80_700, 800, now - 8_000),
        VenueQuote("okx", 67_100, 67_110, 67_105, 900, now - 600_000),
    ]
    result = consolidated_price(quotes, now_ms=now, rules=ConsolidationRules(120_000, 5, 2))
    assert (result.price, result.method) == (67_230, "weighted_median")
    assert result.sources_used == ("coinbase", "gemini", "kraken")
    assert result.as_of == now - 2_000
    verdicts = {v.source: (v.price, v.reason) for v in result.venues}
    assert verdicts["bitstamp"] == (80_700, "outlier")
    assert verdicts["okx"] == (67_105, "stale")
