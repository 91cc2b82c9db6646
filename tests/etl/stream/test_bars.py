"""Minute bars from candle updates (idempotent, late versions ignored) and from trades
while the candle channel is silent."""

from __future__ import annotations

from etl.stream.bars import CANDLES_SILENT_MS, MinuteBars
from etl.stream.gemini_v2 import Bar, Trade

T0 = 1_700_000_040_000  # a whole minute


def test_candle_updates_upsert_the_growing_bar_and_ignore_repeats_and_late_versions() -> None:
    bars = MinuteBars()
    early, grown = Bar(T0, 10, 11, 9, 10.5, 1), Bar(T0, 10, 12, 9, 11, 2)
    assert bars.on_candles((early,), now_ms=T0) == 1
    assert bars.on_candles((grown,), now_ms=T0) == 1
    assert bars.take() == [grown]
    assert bars.on_candles((grown, early), now_ms=T0) == 0  # repeat, then out of order
    assert bars.take() == []


def test_trades_build_bars_while_the_candle_channel_is_silent() -> None:
    bars = MinuteBars()
    for event_id, (offset, price, qty) in enumerate(
        [(1_000, 10, 1), (2_000, 12, 2), (3_000, 9, 1)]
    ):
        bars.on_trade(Trade("BTCUSD", event_id, T0 + offset, price, qty), now_ms=T0 + offset)
    bars.on_trade(Trade("BTCUSD", 1, T0 + 2_000, 12, 2), now_ms=T0 + 4_000)  # a repeat
    bars.on_trade(Trade("BTCUSD", 9, T0 + 61_000, 13, 1), now_ms=T0 + 61_000)
    assert bars.take() == [Bar(T0, 10, 12, 9, 9, 4), Bar(T0 + 60_000, 13, 13, 13, 13, 1)]


def test_trades_leave_bars_to_a_live_candle_channel() -> None:
    bars = MinuteBars()
    bars.on_candles((Bar(T0, 10, 11, 9, 10, 1),), now_ms=T0)
    assert bars.on_trade(Trade("BTCUSD", 1, T0 + 5_000, 50, 1), now_ms=T0 + 5_000) is False
    later = T0 + CANDLES_SILENT_MS + 1
    assert bars.on_trade(Trade("BTCUSD", 2, later, 50, 1), now_ms=later) is True


def test_after_a_subscription_the_candle_channel_gets_its_grace_period_first() -> None:
    bars = MinuteBars()
    bars.listening(T0)
    assert bars.on_trade(Trade("BTCUSD", 1, T0 + 1_000, 50, 1), now_ms=T0 + 1_000) is False
    later = T0 + CANDLES_SILENT_MS + 1
    assert bars.on_trade(Trade("BTCUSD", 2, later, 50, 1), now_ms=later) is True
