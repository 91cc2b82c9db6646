"""One pair's level-2 order book: the snapshot, then increments (a quantity is the new
total at its price; 0 removes the level). A change that would cross the book (best bid at
or above best ask) is refused and undone: the book keeps its last consistent state."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from etl.stream.gemini_v2 import Level


class CrossedBook(ValueError):
    pass


@dataclass
class Book:
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    ready: bool = False  # increments before the snapshot cannot be placed

    def snapshot(self, levels: tuple[Level, ...]) -> None:
        self.bids.clear()
        self.asks.clear()
        self.ready = True
        self.apply(levels)

    def apply(self, levels: tuple[Level, ...]) -> bool:
        """Apply increments; False when no snapshot came yet (ignored). Raises
        `CrossedBook` (and leaves the book as it was) when the result is crossed."""
        if not self.ready:
            return False
        before: list[tuple[dict[Decimal, Decimal], Decimal, Decimal | None]] = []
        for level in levels:
            side = self.bids if level.side == "bid" else self.asks
            before.append((side, level.price, side.get(level.price)))
            if level.quantity == 0:
                side.pop(level.price, None)
            else:
                side[level.price] = level.quantity
        bid, ask = self.best_bid, self.best_ask
        if bid is not None and ask is not None and bid >= ask:
            for side, price, old in reversed(before):
                if old is None:
                    side.pop(price, None)
                else:
                    side[price] = old
            raise CrossedBook(f"crossed_book: bid {bid} >= ask {ask}")
        return True

    @property
    def best_bid(self) -> Decimal | None:
        return max(self.bids) if self.bids else None

    @property
    def best_ask(self) -> Decimal | None:
        return min(self.asks) if self.asks else None
