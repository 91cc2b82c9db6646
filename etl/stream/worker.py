"""The stream worker: one WebSocket connection to Gemini's market data for the pairs of
`COIN_IDS`, kept alive for as long as the process runs.

Per connection: a `stream_session` row; the REST backfill of every pair's 1m bars from the
newest stored bar on (so a disconnect leaves no hole, and live bars never land before it);
the subscribe message; then messages until the connection drops, or nothing arrives for
`STREAM_IDLE_SECONDS` (the watchdog), or the worker is stopped. Writes are micro-batched:
one transaction per `STREAM_BATCH_SECONDS` or per `STREAM_BATCH_UPDATES` updates.
Reconnects back off exponentially with jitter up to `STREAM_MAX_BACKOFF_SECONDS`, with one
warning per backoff step (not per attempt), so an offline machine stays quiet; and however
healthy the connections were, they are opened at most at Gemini's documented request rate
(`STREAM_REQUESTS_PER_MINUTE`, 12: a connection costs two, the connect and the subscribe).
Every `STREAM_REPORT_SECONDS` the worker's state (`StreamStatus`) is written into its run
row, which is how `/health` and `/metrics` in other processes see it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyrate_limiter import Limiter, Rate
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from etl.core.assets import AssetRegistry
from etl.core.errors import GeminiError, LoadError
from etl.core.settings import Settings, ccxt_venues
from etl.extract.gemini_client import GeminiClient
from etl.extract.gemini_pairs import select_pairs
from etl.load.ledger import finish_run, report_run, start_run
from etl.stream.bars import MinuteBars
from etl.stream.book import Book, CrossedBook
from etl.stream.gemini_v2 import (
    BadMessage,
    Bar,
    BookChange,
    BookSnapshot,
    CandleUpdate,
    Event,
    ExchangeError,
    GeminiV2,
    Trade,
)
from etl.stream.store import Pending, StreamStore, TickerRow

if TYPE_CHECKING:
    from etl.stream.venues import VenuePoller

log = logging.getLogger(__name__)
CONNECT_ERRORS = (OSError, TimeoutError, WebSocketException, GeminiError, LoadError)


@dataclass
class StreamStatus:
    """The worker's state, in process, for whoever reports it (health, metrics)."""

    connected: bool = False
    since: float | None = None  # epoch seconds of the current connection
    last_message_at: float | None = None
    messages: int = 0
    bad_messages: int = 0
    reconnects: int = 0
    last_error: str | None = None

    def row(self, *, report_every_s: float) -> dict[str, Any]:
        """As stored in the run row (`etl.read.runs.stream_report` reads it back)."""
        return {
            "connected": self.connected,
            "since_ms": _ms(self.since),
            "last_message_ms": _ms(self.last_message_at),
            "messages": self.messages,
            "bad_messages": self.bad_messages,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
            "reported_ms": _now_ms(),
            "report_every_ms": int(report_every_s * 1000),
        }


@dataclass
class PairState:
    symbol: str  # upper case, as the stream names it
    rest_symbol: str  # as /v1/symbols lists it
    asset_id: int
    book: Book = field(default_factory=Book)
    bars: MinuteBars = field(default_factory=MinuteBars)
    last_trade: Trade | None = None
    changed_ms: int | None = None  # top of book or last trade changed, not yet written
    written_ms: int = 0  # the last ticker's observed_at: each one is later (a new row)


@dataclass
class Session:
    id: int
    batch_id: int
    messages: int = 0
    bad_messages: int = 0
    good_events: int = 0  # a session of refusals and garbage is no healthy one
    reason: str | None = None
    error: str | None = None

    def row(self, ended_ms: int | None = None) -> dict[str, Any]:
        row = {
            "id": self.id,
            "messages": self.messages,
            "bad_messages": self.bad_messages,
            "reconnect_reason": self.reason,
            "last_error": None if self.error is None else self.error[:2000],
        }
        return row if ended_ms is None else {**row, "ended_at": ended_ms}


class StreamWorker:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        client: GeminiClient | None = None,
        adapter: GeminiV2 | None = None,
        on_update: Callable[[Event], None] | None = None,
        request_window_seconds: float = 60.0,
        venue_config: dict[str, Any] | None = None,
    ) -> None:
        """`on_update` sees every good event as it arrives (before the batched write).
        `request_window_seconds`: the window of `STREAM_REQUESTS_PER_MINUTE` (tests
        shorten it). `venue_config`: for the venue poller's ccxt clients (tests)."""
        self.settings, self.engine = settings, engine
        self.client = client or GeminiClient(settings)
        self.adapter = adapter or GeminiV2()
        self.on_update = on_update or _ignore
        self.status = StreamStatus()
        self.run_id = str(uuid.uuid4())
        self.store = StreamStore(
            engine,
            run_id=self.run_id,
            url=settings.gemini_ws_url,
            future_tolerance_ms=settings.future_tolerance_seconds * 1000,
        )
        self.pairs: dict[str, PairState] = {}
        self.pending = Pending()
        self.updates = 0  # since the last flush
        self._writing: asyncio.Future[None] | None = None  # the write under way
        self._warned_step = 0.0
        window_ms = int(request_window_seconds * 1000)
        self.requests = Limiter(Rate(settings.stream_requests_per_minute, window_ms))
        self.venues: VenuePoller | None = None
        if settings.stream_venue_poll_seconds > 0 and ccxt_venues(settings):
            # ccxt is loaded only when a venue is configured (it is the ETL image's)
            from etl.stream.venues import VenuePoller

            self.venues = VenuePoller(settings, engine, run_id=self.run_id, config=venue_config)

    async def run(self) -> None:
        """Until cancelled: connect, stream, reconnect. Cancelling it stops cleanly."""
        await asyncio.to_thread(
            start_run, self.engine, run_id=self.run_id, trigger="stream", now_ms=_now_ms()
        )
        failures, error = 0, None
        reporter = asyncio.create_task(self._report_every())
        background = [reporter]
        if self.venues is not None:
            background.append(asyncio.create_task(self.venues.run()))
        try:
            while not self.pairs:  # the symbol list comes from REST, which may be down too
                try:
                    await asyncio.to_thread(self._resolve_pairs)
                except CONNECT_ERRORS as exc:
                    failures += 1
                    self.status.last_error = f"{type(exc).__name__}: {exc}"
                    await asyncio.sleep(self._backoff(failures, exc))
            failures = 0
            while True:
                healthy = await self._connect_once()
                failures = 0 if healthy else failures + 1
                if healthy:
                    self._warned_step = 0.0  # the next outage warns from its first step
                else:
                    await asyncio.sleep(self._backoff(failures, self.status.last_error))
                self.status.reconnects += 1
        except BaseException as exc:
            error = None if isinstance(exc, asyncio.CancelledError) else repr(exc)
            raise
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await asyncio.to_thread(self._finish, error)

    def _report(self, every: float) -> dict[str, Any]:
        """The run row's `sources`: the stream's state and, when polled, the venues'
        (`stream.venues`: polls, tickers, failures, down, last error per venue)."""
        stream = self.status.row(report_every_s=every)
        if self.venues is not None:
            stream["venues"] = self.venues.report()
        return {"stream": stream}

    async def _report_every(self) -> None:
        """The worker's state into its run row, now and then every report period; a
        database failure here is logged and retried at the next period."""
        every = self.settings.stream_report_seconds
        while True:
            sources = self._report(every)
            try:
                await asyncio.to_thread(
                    report_run, self.engine, run_id=self.run_id, sources=sources
                )
            except SQLAlchemyError as exc:
                log.warning("stream state not recorded", extra={"error": str(exc)})
            await asyncio.sleep(every)

    # -- one connection ----------------------------------------------------------------

    async def _connect_once(self) -> bool:
        """One connection, start to end; True when it carried good events (healthy)."""
        session: Session | None = None
        # a connection costs two requests (connect, subscribe): wait for both in the window
        await self.requests.try_acquire_async("gemini-ws", weight=2)
        try:
            async with connect(
                self.settings.gemini_ws_url, open_timeout=self.settings.stream_idle_seconds
            ) as ws:
                session = Session(*await asyncio.to_thread(self.store.open_session, _now_ms()))
                self.status.connected, self.status.since = True, time.time()
                await asyncio.to_thread(self._backfill)
                await ws.send(self.adapter.subscribe_message(list(self.pairs)))
                for pair in self.pairs.values():
                    pair.bars.listening(_now_ms())
                session.reason = await self._receive(ws, session)
        except asyncio.CancelledError:
            if session is not None:
                session.reason = "stopped"
            raise
        except ConnectionClosed as exc:
            self.status.last_error = f"connection closed: {exc}"
            if session is not None:
                session.reason, session.error = "closed", self.status.last_error
        except CONNECT_ERRORS as exc:
            self.status.last_error = f"{type(exc).__name__}: {exc}"
            if session is not None:
                session.reason, session.error = "error", self.status.last_error
        finally:
            self.status.connected = False
            await self._settle()
            if session is not None:
                await asyncio.to_thread(self._end, session)
        return session is not None and session.good_events > 0

    async def _receive(self, ws: ClientConnection, session: Session) -> str:
        idle = self.settings.stream_idle_seconds
        batch = self.settings.stream_batch_seconds
        idle_at = time.monotonic() + idle
        flush_at = time.monotonic() + batch
        while True:
            wait = max(0.0, min(idle_at, flush_at) - time.monotonic())
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
                # lands as a message arrives, and the worker would not stop (seen in tests).
                async with asyncio.timeout(wait):
                    raw = await ws.recv()
            except TimeoutError:
                if time.monotonic() >= idle_at:
                    self.status.last_error = f"no message for {idle} s"
                    session.error = self.status.last_error
                    return "idle"
                await self._flush(session)
                flush_at = time.monotonic() + batch
                continue
            idle_at = time.monotonic() + idle
            self._handle(raw, session)
            if self.updates >= self.settings.stream_batch_updates or time.monotonic() >= flush_at:
                await self._flush(session)
                flush_at = time.monotonic() + batch

    # -- messages ----------------------------------------------------------------------

    def _handle(self, raw: str | bytes, session: Session) -> None:
        now_ms = _now_ms()
        session.messages += 1
        self.status.messages += 1
        self.status.last_message_at = now_ms / 1000
        for event in self.adapter.parse(raw):
            problem = self._apply(event, now_ms)
            if problem is not None:
                text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                self._reject(problem, text, session)
                continue
            session.good_events += 1
            try:
                self.on_update(event)
            except Exception:  # a subscriber's failure must not stop the stream
                log.exception("stream on_update hook failed")

    def _apply(self, event: Event, now_ms: int) -> str | None:
        """Fold one event into the pair's state; the reason when it is bad."""
        if isinstance(event, BadMessage):
            return event.reason
        if isinstance(event, ExchangeError):
            self.status.last_error = f"exchange error: {event.reason}"
            return f"exchange_error: {event.reason}"
        symbol = getattr(event, "symbol", None)
        if symbol is None:
            return None  # a heartbeat: it only fed the watchdog
        pair = self.pairs.get(symbol)
        if pair is None:
            return f"unknown_symbol: {symbol}"
        if isinstance(event, BookSnapshot):
            pair.book.snapshot(event.levels)
        elif isinstance(event, BookChange):
            try:
                if not pair.book.apply(event.levels):
                    return None
            except CrossedBook as exc:
                return str(exc)
        elif isinstance(event, Trade):
            if pair.last_trade is None or event.time_ms >= pair.last_trade.time_ms:
                pair.last_trade = event
            if event.live:  # the snapshot's trades may be from minutes seen only in part
                pair.bars.on_trade(event, now_ms=now_ms)
        elif isinstance(event, CandleUpdate):
            pair.bars.on_candles(event.bars, now_ms=now_ms)
            self.updates += 1
            return None
        pair.changed_ms = now_ms
        self.updates += 1
        return None

    def _reject(self, reason: str, raw: str, session: Session) -> None:
        session.bad_messages += 1
        self.status.bad_messages += 1
        self.pending.rejected.append((reason, raw))
        self.updates += 1

    def _collect(self) -> Pending:
        """What the next write holds: quarantined messages, changed bars, new tickers."""
        pending, self.pending, self.updates = self.pending, Pending(), 0
        for pair in self.pairs.values():
            bars = pair.bars.take()
            if bars:
                pending.bars[pair.asset_id] = bars
            ticker = _ticker(pair)
            if ticker is not None:
                pending.tickers.append(ticker)
                pair.changed_ms = None
        return pending

    async def _flush(self, session: Session) -> None:
        """Start writing what is pending, in a thread, without waiting for it: messages
        keep being read while the database writes (waiting here held every message behind
        a write, the worker's worst latency). One write at a time: while one is under way,
        what arrives waits for the next. A failed write ends the connection, as before."""
        writing = self._writing
        if writing is not None:
            if not writing.done():
                return
            self._writing = None
            writing.result()
        pending = self._collect()
        if pending:
            self._writing = asyncio.create_task(
                asyncio.to_thread(
                    self.store.write,
                    pending,
                    batch_id=session.batch_id,
                    now_ms=_now_ms(),
                    session=session.row(),
                )
            )

    async def _settle(self) -> None:
        """Wait for the write under way (the session is ending: a failure is logged)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            try:
                await writing
            except LoadError:
                log.exception("stream write failed")

    # -- setup, backfill, teardown (run in a thread) -----------------------------------

    def _resolve_pairs(self) -> None:
        registry = AssetRegistry()
        selections, skipped = select_pairs(
            self.settings.coin_ids,
            self.client.symbols(),
            lambda coin: registry.resolve(coin, strict=False),
        )
        for coin, reason in skipped.items():
            log.warning("coin skipped", extra={"coin": coin, "reason": reason})
        refs = {s.symbol.symbol.upper(): s.asset for s in selections}
        ids = self.store.asset_ids(refs)
        self.pairs = {
            s.symbol.symbol.upper(): PairState(
                s.symbol.symbol.upper(), s.symbol.symbol, ids[s.symbol.symbol.upper()]
            )
            for s in selections
        }

    def _backfill(self) -> None:
        """The minutes since each pair's newest stored bar, from REST, before live bars."""
        for pair in self.pairs.values():
            rows = self.client.candles(pair.rest_symbol, "1m")
            bars = [Bar(r.time_ms, r.open, r.high, r.low, r.close, r.volume) for r in rows]
            kept = self.store.backfill(
                pair.asset_id,
                bars,
                path=f"/v2/candles/{pair.rest_symbol}/1m",
                now_ms=_now_ms(),
            )
            log.info("stream backfill", extra={"symbol": pair.symbol, "bars": kept})

    def _end(self, session: Session) -> None:
        """Whatever is pending, then the session's end; a database failure here is
        logged (the worker goes on and reconnects), not raised."""
        try:
            pending, now = self._collect(), _now_ms()
            if pending:
                self.store.write(
                    pending, batch_id=session.batch_id, now_ms=now, session=session.row()
                )
            self.store.close_session(session.row(now))
        except LoadError:
            log.exception("stream session could not be closed")

    def _finish(self, error: str | None) -> None:
        troubled = self.status.bad_messages or self.status.last_error
        status = "failed" if error else ("partial" if troubled else "success")
        self.status.connected = False
        sources = self._report(self.settings.stream_report_seconds)
        finish_run(
            self.engine,
            run_id=self.run_id,
            status=status,
            sources=sources,
            error=error,
            now_ms=_now_ms(),
        )

    def _backoff(self, failures: int, error: object) -> float:
        """The wait before the next attempt: exponential, capped, jittered; one warning
        each time the step grows, none while it stays at the cap."""
        cap = self.settings.stream_max_backoff_seconds
        # the exponent is bounded: 2.0 ** 1024 overflows, and an outage may last that long
        step: float = min(cap, min(1.0, cap) * 2.0 ** min(failures - 1, 60))
        if step > self._warned_step:
            self._warned_step = step
            log.warning("stream reconnecting", extra={"wait_seconds": step, "error": str(error)})
        # jitter spreads reconnects of many workers; not a security use of random
        return step * (0.5 + random.random() / 2)  # noqa: S311


def _ticker(pair: PairState) -> TickerRow | None:
    if pair.changed_ms is None or pair.last_trade is None:
        return None
    # Tickers are unique per (pair, observed_at ms): two writes within one millisecond
    # would make the newer one a duplicate, silently dropped. Each is a millisecond later.
    pair.written_ms = max(pair.changed_ms, pair.written_ms + 1)
    bid, ask = pair.book.best_bid, pair.book.best_ask
    return TickerRow(
        asset_id=pair.asset_id,
        observed_at=pair.written_ms,
        bid=None if bid is None else float(bid),
        ask=None if ask is None else float(ask),
        last=pair.last_trade.price,
        raw={
            "bid": None if bid is None else str(bid),
            "ask": None if ask is None else str(ask),
            "last": pair.last_trade.price,
            "trade_event_id": pair.last_trade.event_id,
        },
    )


def _ignore(event: Event) -> None:  # noqa: ARG001 - the default hook does nothing
    return None


def _ms(epoch_s: float | None) -> int | None:
    return None if epoch_s is None else int(epoch_s * 1000)


def _now_ms() -> int:
    return int(time.time() * 1000)
