"""The stream hub: one background task per app follows price and candle updates and fans
them out to the `/api/crypto/stream` subscribers.

Updates come from Redis pub/sub when configured (`ApiSettings.stream_redis`: every worker
and replica subscribes, so all of them see every update), else from the database: new
ticker rows by id and candle rows by write time, polled at most every STREAM_POLL_SECONDS
in the thread pool. Each update becomes an event with an id `<hub>-<seq>`: `<hub>` is
random per process, so a Last-Event-ID from another process (or before a restart) is
recognised as unknown rather than silently mistaken for a local one. The newest
STREAM_REPLAY events are kept for resuming. Every event is kept once, in one
log of the newest max(STREAM_REPLAY, STREAM_CLIENT_QUEUE) events: replay reads it, and each
subscriber is a cursor into it. A client more than STREAM_CLIENT_QUEUE events behind is
dropped (it gets a final `error` event), so a slow client never grows the process's memory.

Fan-out cost: an event's SSE frame is encoded once, in the hub, not once per client; a
publish costs one flag per client (no per-client queue); a client's writer wakes on its
flag and sends everything new for it in one write (at most `WRITE_BATCH` frames), so under
load the sends per client follow the event loop's pace, not the update rate (measured:
bench/stream_load.py, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from redis import asyncio as aioredis
from sqlalchemy import Engine
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.errors import Problem
from api.responses import HotCache
from api.settings import ApiSettings
from etl.core.clock import from_epoch_ms
from etl.read.updates import (
    PriceUpdate,
    Update,
    candle_high_water,
    candles_since,
    prices_since,
    ticker_high_water,
    update_from_json,
)

log = logging.getLogger("api.stream")

LIVE_BARS_MS = 86_400_000  # bars closed longer ago than this are history, not pushed
WRITE_BATCH = 256  # frames per write to one client, at most


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    name: str  # "price" or "candle"
    symbol: str
    data: str  # JSON
    frame: bytes  # the whole SSE frame, encoded once for every client


def event_of(event_id: str, update: Update) -> Event:
    if isinstance(update, PriceUpdate):
        fields: dict[str, Any] = {
            "symbol": update.symbol,
            "price": update.price,
            "bid": update.bid,
            "ask": update.ask,
            "spread": update.spread,
            "as_of": from_epoch_ms(update.as_of).isoformat(),
            "source": update.source,
        }
    else:
        fields = {
            "symbol": update.symbol,
            "source": update.source,
            "interval": update.interval,
            "open_time": from_epoch_ms(update.open_time).isoformat(),
            "open": update.open,
            "high": update.high,
            "low": update.low,
            "close": update.close,
            "volume": update.volume,
            "closed": update.closed,
        }
    data = json.dumps(fields)
    frame = ServerSentEvent(data, event=update.kind, id=event_id).encode()
    return Event(event_id, update.kind, update.symbol, data, frame)


@dataclass(eq=False)
class Subscriber:
    """One stream client: how far it has read the hub's log, and a flag the hub sets when
    there is more (its writer sleeps on it)."""

    key: str  # the caller's key fingerprint
    symbols: frozenset[str] | None  # None: every symbol
    cursor: int  # the sequence number of the last event taken
    joined: int = 0  # the sequence number when it subscribed (resuming stops there)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False


@dataclass(frozen=True, slots=True)
class Resume:
    events: list[Event]
    lost: bool  # the Last-Event-ID is unknown or older than the replay buffer


class StreamHub:
    def __init__(self, settings: ApiSettings, cache: HotCache) -> None:
        self.settings, self.cache = settings, cache
        self.hub_id = secrets.token_hex(4)
        self._seq = 0
        # One log for replay and for every client's backlog: each event is kept once.
        kept = max(settings.stream_replay, settings.stream_client_queue) + 1
        self._log: deque[tuple[int, Event]] = deque(maxlen=kept)
        self._subscribers: set[Subscriber] = set()
        self._per_key: Counter[str] = Counter()
        # One follower per running lifespan, by event loop: tests run an app's lifespan
        # more than once, even overlapping, each in its own loop (TestClient, schemathesis).
        self._runs: dict[asyncio.AbstractEventLoop, tuple[asyncio.Task[None], asyncio.Event]]
        self._runs = {}

    async def start(self, engine: Engine) -> None:
        stopping = asyncio.Event()
        redis_url = self.settings.stream_redis()
        follow = (
            self._follow_redis(redis_url) if redis_url else self._follow_database(engine, stopping)
        )
        task = asyncio.create_task(follow, name="stream-hub")
        self._runs[asyncio.get_running_loop()] = (task, stopping)

    async def stop(self) -> None:
        run = self._runs.pop(asyncio.get_running_loop(), None)
        if run is not None:
            task, stopping = run
            stopping.set()
            # Following the database ends on its own after the read under way: cancelling
            # would abandon that read's thread, still querying while the engine is disposed
            # (and while a test drops its schema: a deadlock, seen on PostgreSQL).
            if self.settings.stream_redis():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self._runs:
            for subscriber in list(self._subscribers):
                self._drop(subscriber)

    def subscribe(self, key: str, symbols: frozenset[str] | None) -> Subscriber:
        """A new subscriber; 503 past the global cap, 429 past the caller's own."""
        settings = self.settings
        if len(self._subscribers) >= settings.stream_max_clients:
            raise Problem(
                503,
                "stream_capacity",
                "too many streams open; try again later",
                headers={"Retry-After": "5"},
            )
        if self._per_key[key] >= settings.stream_max_per_key:
            raise Problem(
                429,
                "too_many_streams",
                f"at most {settings.stream_max_per_key} concurrent streams per API key",
                headers={"Retry-After": "5"},
            )
        subscriber = Subscriber(key, symbols, cursor=self._seq, joined=self._seq)
        self._subscribers.add(subscriber)
        self._per_key[key] += 1
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.discard(subscriber)
            self._per_key[subscriber.key] -= 1
            if not self._per_key[subscriber.key]:
                del self._per_key[subscriber.key]

    def _drop(self, subscriber: Subscriber) -> None:
        subscriber.dropped = True
        subscriber.ready.set()
        self.unsubscribe(subscriber)

    def resume(
        self, last_event_id: str, symbols: frozenset[str] | None, until: int | None = None
    ) -> Resume:
        """The kept events after `last_event_id` for these symbols (up to sequence number
        `until`: a subscriber's live events start after it)."""
        hub, _, seq_text = last_event_id.partition("-")
        if hub != self.hub_id or not seq_text.isdigit():
            return Resume([], lost=True)
        seq = int(seq_text)
        oldest = self._seq - self.settings.stream_replay + 1
        if self._log:
            oldest = max(oldest, self._log[0][0])
        if seq < oldest - 1 or seq > self._seq:
            return Resume([], lost=True)
        last = self._seq if until is None else until
        return Resume(
            [e for s, e in self._log if seq < s <= last and _wanted(symbols, e.symbol)],
            lost=False,
        )

    def take(self, subscriber: Subscriber, most: int = WRITE_BATCH) -> list[Event] | None:
        """The subscriber's events since its cursor (at most `most` read), the cursor moved
        past them; None once it is dropped."""
        if subscriber.dropped:
            return None
        newer: list[tuple[int, Event]] = []
        for seq, event in reversed(self._log):  # the newest are at the end: read back
            if seq <= subscriber.cursor:
                break
            newer.append((seq, event))
        newer.reverse()
        if len(newer) > most:
            newer = newer[:most]
            subscriber.ready.set()  # more to take
        if newer:
            subscriber.cursor = newer[-1][0]
        return [event for _, event in newer if _wanted(subscriber.symbols, event.symbol)]

    async def frames(self, subscriber: Subscriber) -> bytes | None:
        """The subscriber's next write: the frames of every event for it since its last
        one (at most `WRITE_BATCH`), waiting for one; None once it is dropped."""
        while True:
            if subscriber.dropped:
                return None
            await subscriber.ready.wait()
            subscriber.ready.clear()  # before taking: a publish from now on sets it again
            events = self.take(subscriber)
            if events is None:
                return None
            if events:
                return b"".join(event.frame for event in events)

    def publish(self, update: Update) -> None:
        """Make `update` an event, append it to the log and wake the subscribers; drop
        those more than STREAM_CLIENT_QUEUE events behind."""
        self._seq += 1
        event = event_of(f"{self.hub_id}-{self._seq}", update)
        self._log.append((self._seq, event))
        if isinstance(update, PriceUpdate):
            self.cache.invalidate("latest?")
            self.cache.invalidate("metrics?")
        bound = self.settings.stream_client_queue
        behind = [s for s in self._subscribers if self._seq - s.cursor > bound]
        for subscriber in behind:
            log.warning("stream client %s dropped: over %d events behind", subscriber.key, bound)
            self._drop(subscriber)
        for subscriber in self._subscribers:
            if not subscriber.ready.is_set():
                subscriber.ready.set()

    async def _follow_database(self, engine: Engine, stopping: asyncio.Event) -> None:
        def high_water() -> tuple[int, int]:
            with engine.connect() as conn:
                return ticker_high_water(conn), candle_high_water(conn)

        def read(after_id: int, after_ms: int) -> tuple[tuple[int, int], list[Update]]:
            """The updates since the marks, and the marks after them."""
            now_ms = int(time.time() * 1000)
            with engine.connect() as conn:
                prices = prices_since(conn, after_id)
                bars = candles_since(
                    conn, after_ms, now_ms=now_ms, closing_after_ms=now_ms - LIVE_BARS_MS
                )
            updates: list[Update] = [price for _, price in prices]
            updates += [bar for _, bar in bars]
            after_id = prices[-1][0] if prices else after_id
            after_ms = max([written for written, _ in bars], default=after_ms)
            return (after_id, after_ms), updates

        marks: tuple[int, int] | None = None  # none yet: start after what exists now
        while True:
            try:
                if marks is None:
                    marks = await run_in_threadpool(high_water)
                else:
                    marks, updates = await run_in_threadpool(read, *marks)
                    for update in updates:
                        self.publish(update)
            except Exception as exc:  # a database hiccup must not end the stream: next poll
                # One line, no traceback: an outage would otherwise log one per poll.
                log.warning("following the database failed (%s); retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.settings.stream_poll_seconds)
            if stopping.is_set():
                return

    async def _follow_redis(self, url: str) -> None:
        while True:
            client = aioredis.Redis.from_url(url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.settings.stream_redis_channel)
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=1.0
                        )
                        if message is not None:
                            self._receive(message["data"])
            except (aioredis.RedisError, OSError) as exc:
                log.warning("Redis subscription lost (%s); reconnecting in 1 s", exc)
                await asyncio.sleep(1)
            finally:
                await client.aclose()

    def _receive(self, data: bytes) -> None:
        try:
            update = update_from_json(data)
        except ValueError as exc:  # one bad message is skipped, not the subscription
            log.warning("skipped a stream message: %s", exc)
            return
        self.publish(update)


def _wanted(symbols: frozenset[str] | None, symbol: str) -> bool:
    return symbols is None or symbol in symbols
