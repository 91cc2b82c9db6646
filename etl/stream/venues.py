"""Fresh venue quotes between batch runs: the stream worker polls the tickers of every ccxt
venue of `EXCHANGES` (not Gemini: the WebSocket keeps its ticker) every
`STREAM_VENUE_POLL_SECONDS`, so the consolidated price (`CONSOLIDATE_MAX_AGE_SECONDS`, 120 s)
has several fresh venues, not only after a batch run.

Each poll stores one ticker per pair (source = the venue id) through the same rules as the
batch source: a non-positive or inverted quote is quarantined, not stored. A venue fails
alone and quietly: one warning when it goes down (one attempt per call, no retries: the
next poll is the retry; its breaker opens after repeated failures), one line when it is
back. The pairs are chosen as the batch source chooses them (`select_venue_pairs`), once
per venue, again after a failure to read its markets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from etl.core.assets import AssetRegistry
from etl.core.errors import LoadError, VenueError, VenueRequestError
from etl.core.settings import Settings, ccxt_venues
from etl.extract.ccxt_client import VenueClient
from etl.extract.venue_pairs import VenuePair, select_venue_pairs
from etl.load.writer import ensure_asset, insert_ticker, load_transaction, quarantine
from etl.transform.validate import ticker_problem

log = logging.getLogger(__name__)
QUARANTINE_SOURCE = "venue_poll"


@dataclass
class VenueState:
    """One venue's polling, as the worker's run row reports it."""

    polls: int = 0
    tickers: int = 0
    failures: int = 0
    last_error: str | None = None
    down: bool = False
    pairs: list[tuple[VenuePair, int]] | None = field(default=None, repr=False)  # + asset id

    def report(self) -> dict[str, Any]:
        return {
            "polls": self.polls,
            "tickers": self.tickers,
            "failures": self.failures,
            "down": self.down,
            "last_error": self.last_error,
        }


class VenuePoller:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        run_id: str,
        config: dict[str, Any] | None = None,
    ) -> None:
        """`config` goes to each ccxt client's constructor (tests pass a short rateLimit)."""
        # one attempt per call: the next poll is the retry, and an outage stays quiet
        self.settings = settings.model_copy(update={"exchange_retries": 1})
        self.engine, self.run_id, self.config = engine, run_id, config
        self.venues = {venue: VenueState() for venue in ccxt_venues(settings)}
        self.clients: dict[str, VenueClient] = {}

    async def run(self) -> None:
        """Poll every venue, then wait out the period; until cancelled."""
        every = self.settings.stream_venue_poll_seconds
        try:
            while True:
                started = time.monotonic()
                for venue in self.venues:
                    await asyncio.to_thread(self.poll, venue)
                await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))
        finally:
            for client in self.clients.values():
                client.close()

    def report(self) -> dict[str, Any]:
        return {venue: state.report() for venue, state in self.venues.items()}

    def poll(self, venue: str) -> None:
        """One venue's tickers, each pair's stored (or quarantined) in its own transaction."""
        state = self.venues[venue]
        state.polls += 1
        try:
            client = self.clients.get(venue)
            if client is None:
                client = self.clients[venue] = VenueClient(venue, self.settings, config=self.config)
            if state.pairs is None:
                state.pairs = self._pairs(venue, client)
            for pair, asset_id in state.pairs:
                try:
                    self._store(venue, pair, asset_id, client)
                except VenueRequestError as exc:  # this pair refused: the others go on
                    state.failures += 1
                    state.last_error = str(exc)[:500]
        except (VenueError, LoadError) as exc:  # a database failure too: the next poll retries
            state.failures += 1
            state.last_error = str(exc)[:500]
            if not state.down:
                log.warning("venue poll failed", extra={"venue": venue, "error": str(exc)})
            state.down = True
            return
        if state.down:
            log.info("venue poll works again", extra={"venue": venue})
        state.down = False

    def _pairs(self, venue: str, client: VenueClient) -> list[tuple[VenuePair, int]]:
        registry = AssetRegistry()
        pairs, _ = select_venue_pairs(
            venue,
            self.settings.coin_ids,
            client.markets(),
            self.settings.quotes,
            lambda coin: registry.resolve(coin, strict=False),
        )
        with load_transaction(self.engine, f"{venue} poll") as conn:
            return [(pair, ensure_asset(conn, pair.asset)) for pair in pairs]

    def _store(self, venue: str, pair: VenuePair, asset_id: int, client: VenueClient) -> None:
        ticker = client.ticker(pair.market.symbol)
        now_ms = int(time.time() * 1000)
        problem = ticker_problem(ticker.bid, ticker.ask, ticker.last)
        with load_transaction(self.engine, f"{venue} poll") as conn:
            if problem is not None:
                raw = json.dumps(ticker.info, default=str)[:2000]
                path = f"ccxt:{venue}/ticker/{pair.market.venue_id}"
                quarantine(
                    conn,
                    [(None, raw, problem)],
                    run_id=self.run_id,
                    source=QUARANTINE_SOURCE,
                    file=path,
                    now_ms=now_ms,
                )
                return
            # observed now: a venue's own stamp can be coarse, and this is when we saw it
            written = insert_ticker(
                conn,
                asset_id=asset_id,
                source=venue,
                observed_at=now_ms,
                bid=ticker.bid,
                ask=ticker.ask,
                last=ticker.last,
                volume_base_24h=ticker.base_volume,
                volume_quote_24h=ticker.quote_volume,
                raw=ticker.info,
                run_id=self.run_id,
            )
        self.venues[venue].tickers += int(written)
