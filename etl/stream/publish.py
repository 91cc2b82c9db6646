"""The worker's `on_update` hook for Redis: every live trade is published as a price (with
the book's best bid and ask at that moment) and every candle update as a bar, on receipt,
before the batched database write, so API processes can push them at once.

A Redis outage never stops the stream: the first failure is one warning, publishing
resumes when Redis answers, and the database write goes on either way (clients then get
the update when the API follows the database, or on their next `/latest`).
"""

from __future__ import annotations

import logging

import redis

from etl.core.clock import utc_now_ms
from etl.load.updates import CHANNEL, Publisher, publish_candle, publish_price
from etl.stream.gemini_v2 import CandleUpdate, Event, Trade
from etl.stream.worker import StreamWorker

log = logging.getLogger(__name__)
SOURCE = "gemini"
MINUTE_MS = 60_000


class RedisUpdates:
    def __init__(self, worker: StreamWorker, client: Publisher, channel: str = CHANNEL) -> None:
        """`worker`: whose pair states (the book) are read when an event arrives."""
        self.worker, self.client, self.channel = worker, client, channel
        self.down = False

    def __call__(self, event: Event) -> None:
        try:
            if isinstance(event, Trade) and event.live:
                self._price(event)
            elif isinstance(event, CandleUpdate) and event.bars:
                self._candle(event)
        except redis.RedisError as exc:
            if not self.down:
                log.warning("stream updates not published: Redis failed", extra={"error": str(exc)})
            self.down = True
            return
        if self.down:
            log.info("stream updates published again")
        self.down = False

    def _price(self, trade: Trade) -> None:
        pair = self.worker.pairs.get(trade.symbol)
        bid = ask = None
        if pair is not None:
            best_bid, best_ask = pair.book.best_bid, pair.book.best_ask
            bid = None if best_bid is None else float(best_bid)
            ask = None if best_ask is None else float(best_ask)
        publish_price(
            self.client,
            symbol=trade.symbol,
            source=SOURCE,
            price=trade.price,
            bid=bid,
            ask=ask,
            as_of_ms=trade.time_ms,
            channel=self.channel,
        )

    def _candle(self, update: CandleUpdate) -> None:
        bar = update.bars[-1]  # the newest: the one forming, or just closed
        close_ms = bar.open_time + MINUTE_MS
        publish_candle(
            self.client,
            symbol=update.symbol,
            source=SOURCE,
            interval=update.interval,
            open_time_ms=bar.open_time,
            close_time_ms=close_ms,
            ohlc=(bar.open, bar.high, bar.low, bar.close),
            volume=bar.volume,
            closed=close_ms <= utc_now_ms(),
            channel=self.channel,
        )
