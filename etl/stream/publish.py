"""The worker's `on_update` hook for Redis: every live trade is published as a price (with
the book's best bid and ask at that moment) and every candle update as a bar, on receipt,
before the batched database write, so API processes can push them at once.

The event loop never waits on Redis: the hook only encodes the message and queues it; one
thread publishes what is queued, several messages per round trip (a pipeline). The queue
is bounded (`max_queued`): when Redis cannot keep up, new messages are dropped and counted,
never allowed to grow memory. A Redis outage never stops the stream: the first failure is
one warning, publishing resumes when Redis answers, and the database write goes on either
way (clients then get the update when the API follows the database, or on their next
`/latest`).
"""

from __future__ import annotations

import logging
import queue
import threading

import redis

from etl.core.clock import utc_now_ms
from etl.load.updates import CHANNEL, candle_message, price_message
from etl.stream.gemini_v2 import CandleUpdate, Event, Trade
from etl.stream.worker import StreamWorker

log = logging.getLogger(__name__)
SOURCE = "gemini"
MINUTE_MS = 60_000
MAX_QUEUED = 10_000
PER_ROUND_TRIP = 500


class RedisUpdates:
    def __init__(
        self,
        worker: StreamWorker,
        client: redis.Redis,
        channel: str = CHANNEL,
        *,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        """`worker`: whose pair states (the book) are read when an event arrives."""
        self.worker, self.client, self.channel = worker, client, channel
        self.queue: queue.Queue[bytes | None] = queue.Queue(max_queued)
        self.published = self.dropped = self.failed = 0
        self.down = False
        self._thread = threading.Thread(target=self._run, name="redis-updates", daemon=True)
        self._thread.start()

    def __call__(self, event: Event) -> None:
        message = self._message(event)
        if message is None:
            return
        try:
            self.queue.put_nowait(message)
        except queue.Full:
            if not self.dropped:
                log.warning("stream updates dropped: the Redis queue is full")
            self.dropped += 1

    def close(self, timeout: float = 2.0) -> None:
        """Publish what is queued (for at most `timeout` seconds), then stop the thread."""
        try:
            self.queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    # -- encoding, on the event loop ---------------------------------------------------

    def _message(self, event: Event) -> bytes | None:
        if isinstance(event, Trade) and event.live:
            return self._price(event)
        if isinstance(event, CandleUpdate) and event.bars:
            return self._candle(event)
        return None

    def _price(self, trade: Trade) -> bytes:
        pair = self.worker.pairs.get(trade.symbol)
        bid = ask = None
        if pair is not None:
            best_bid, best_ask = pair.book.best_bid, pair.book.best_ask
            bid = None if best_bid is None else float(best_bid)
            ask = None if best_ask is None else float(best_ask)
        return price_message(
            symbol=trade.symbol,
            source=SOURCE,
            price=trade.price,
            bid=bid,
            ask=ask,
            as_of_ms=trade.time_ms,
        )

    def _candle(self, update: CandleUpdate) -> bytes:
        bar = update.bars[-1]  # the newest: the one forming, or just closed
        close_ms = bar.open_time + MINUTE_MS
        return candle_message(
            symbol=update.symbol,
            source=SOURCE,
            interval=update.interval,
            open_time_ms=bar.open_time,
            close_time_ms=close_ms,
            ohlc=(bar.open, bar.high, bar.low, bar.close),
            volume=bar.volume,
            closed=close_ms <= utc_now_ms(),
        )

    # -- publishing, in the thread -----------------------------------------------------

    def _run(self) -> None:
        while True:
            batch: list[bytes] = []
            item = self.queue.get()
            while item is not None:
                batch.append(item)
                if len(batch) >= PER_ROUND_TRIP:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._publish(batch)
            if item is None:
                return

    def _publish(self, batch: list[bytes]) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            for message in batch:
                pipe.publish(self.channel, message)
            pipe.execute()
        except Exception as exc:  # this thread must outlive any failure: it is the only one
            self.failed += len(batch)
            if not self.down:
                log.warning("stream updates not published: Redis failed", extra={"error": str(exc)})
            self.down = True
            return
        self.published += len(batch)
        if self.down:
            log.info("stream updates published again")
        self.down = False
