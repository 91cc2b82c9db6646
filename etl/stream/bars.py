"""One pair's 1-minute bars as the stream sees them.

Bars come from `candles_1m_updates` (the current bar is re-sent as it grows), or are built
from trades while the candle channel is silent for the pair. Updates are idempotent: a
repeat changes nothing, and an older version of a bar arriving late (out of order) is
ignored, because a growing bar's volume never shrinks.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from etl.stream.gemini_v2 import MINUTE_MS, Bar, Trade

CANDLES_SILENT_MS = 90_000  # no candle update for this long: trades build the bars
KEEP_MINUTES = 30  # bars remembered for ordering; older ones are accepted as they come
KEEP_TRADE_IDS = 10_000  # trade ids remembered to drop repeats (the snapshot resends 50)


@dataclass
class MinuteBars:
    known: dict[int, Bar] = field(default_factory=dict)  # open time -> newest version
    dirty: dict[int, Bar] = field(default_factory=dict)  # changed since the last take()
    last_candle_ms: int | None = None  # receipt time of the last candle update
    listening_since_ms: int | None = None  # the subscription's start: silence counts from it
    seen_ids: set[int] = field(default_factory=set)
    seen_order: deque[int] = field(default_factory=deque)

    def listening(self, now_ms: int) -> None:
        """A (re)subscription: the candle channel gets its full grace period again."""
        self.listening_since_ms, self.last_candle_ms = now_ms, None

    def on_candles(self, bars: tuple[Bar, ...], *, now_ms: int) -> int:
        """Take bars from the candle channel; returns how many changed."""
        self.last_candle_ms = now_ms
        return sum(self._offer(bar) for bar in bars)

    def on_trade(self, trade: Trade, *, now_ms: int) -> bool:
        """Fold a trade into its minute's bar while the candle channel is silent; a trade
        seen before (same event id) is not counted twice."""
        if trade.event_id in self.seen_ids:
            return False
        self.seen_ids.add(trade.event_id)
        self.seen_order.append(trade.event_id)
        if len(self.seen_order) > KEEP_TRADE_IDS:
            self.seen_ids.discard(self.seen_order.popleft())
        heard = self.last_candle_ms or self.listening_since_ms
        silent = heard is None or now_ms - heard > CANDLES_SILENT_MS
        if not silent:
            return False
        open_time = trade.time_ms // MINUTE_MS * MINUTE_MS
        current = self.known.get(open_time)
        price, quantity = trade.price, trade.quantity
        if current is None:
            bar = Bar(open_time, price, price, price, price, quantity)
        else:
            bar = replace(
                current,
                high=max(current.high, price),
                low=min(current.low, price),
                close=price,
                volume=current.volume + quantity,
            )
        return self._offer(bar)

    def take(self) -> list[Bar]:
        """The bars changed since the last call, oldest first (what to write now)."""
        bars = sorted(self.dirty.values(), key=lambda b: b.open_time)
        self.dirty.clear()
        return bars

    def _offer(self, bar: Bar) -> bool:
        current = self.known.get(bar.open_time)
        if current == bar or (current is not None and bar.volume < current.volume):
            return False  # a repeat, or an older version arriving late
        self.known[bar.open_time] = bar
        self.dirty[bar.open_time] = bar
        newest = max(self.known)
        for stale in [t for t in self.known if t < newest - KEEP_MINUTES * MINUTE_MS]:
            del self.known[stale]
        return True
