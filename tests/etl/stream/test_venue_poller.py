"""The stream worker's venue poller against the Kraken and Bitstamp doubles (real ccxt), on
both databases: fresh tickers per venue that make a consolidated price between batch runs,
a venue failing alone and quietly, bad quotes quarantined, and its report in the run row."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid

import pytest
from sqlalchemy import Engine

from etl.core.settings import Settings
from etl.load.ledger import start_run
from etl.read.assets import resolve_asset
from etl.read.venues import consolidated_for
from etl.stream.venues import VenuePoller
from etl.transform.consolidate import ConsolidationRules
from tests.helpers import rows, scalar
from tests.venue_doubles import (
    FAST,
    PRICES,
    VenueDouble,
)


@pytest.fixture
def poll_settings(settings: Settings, doubles: dict[str, VenueDouble]) -> Settings:
    return settings.model_copy(
        update={
            "exchanges": ["gemini", "kraken", "bitstamp"],
            "exchange_urls": {venue: double.url for venue, double in doubles.items()},
            "exchange_timeout_seconds": 0.3,
            "coin_ids": ["bitcoin"],
            "stream_venue_poll_seconds": 0.05,
        }
    )


def poller(settings: Settings, engine: Engine) -> VenuePoller:
    """A poller under a run of its own (quarantined quotes point at it)."""
    run_id = str(uuid.uuid4())
    start_run(engine, run_id=run_id, trigger="stream", now_ms=int(time.time() * 1000))
    return VenuePoller(settings, engine, run_id=run_id, config=FAST)


def test_each_poll_stores_fresh_tickers_that_make_a_consolidated_price(
    poll_settings: Settings, engine: Engine
) -> None:
    polls = poller(poll_settings, engine)
    assert list(polls.venues) == ["kraken", "bitstamp"]  # gemini is the WebSocket's
    for _ in range(2):
        for venue in polls.venues:
            polls.poll(venue)
        time.sleep(0.01)
    counts = dict(
        rows(engine, "SELECT source, count(*) FROM ticker GROUP BY source ORDER BY source")
    )
    assert counts == {"bitstamp": 2, "kraken": 2}
    assert {v: s.tickers for v, s in polls.venues.items()} == {"kraken": 2, "bitstamp": 2}
    with engine.connect() as conn:
        asset = resolve_asset(conn, "bitcoin")
        rules = ConsolidationRules(max_age_ms=120_000, mad_k=5, min_sources=2)
        price = consolidated_for(conn, asset.id, now_ms=int(time.time() * 1000), rules=rules)
    assert (price.method, price.sources_used) == ("weighted_median", ("bitstamp", "kraken"))
    assert price.price is not None and abs(price.price / PRICES["BTC"] - 1) < 0.002


def test_a_venue_down_fails_alone_with_one_warning_and_comes_back(
    poll_settings: Settings,
    engine: Engine,
    doubles: dict[str, VenueDouble],
    caplog: pytest.LogCaptureFixture,
) -> None:
    polls = poller(poll_settings, engine)
    for venue in polls.venues:
        polls.poll(venue)  # markets known, one ticker each
    doubles["kraken"].fail("/0/public/Ticker", "503", "503", "503")
    with caplog.at_level(logging.INFO, logger="etl.stream.venues"):
        for _ in range(3):
            polls.poll("kraken")
            polls.poll("bitstamp")
            time.sleep(0.01)
        polls.poll("kraken")  # the faults are used up: back
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("venue poll failed") == 1
    assert messages.count("venue poll works again") == 1
    kraken = polls.report()["kraken"]
    assert (kraken["failures"], kraken["down"], kraken["polls"]) == (3, False, 5)
    assert "unavailable" in kraken["last_error"]
    assert scalar(engine, "SELECT count(*) FROM ticker WHERE source = 'bitstamp'") == 4
    assert scalar(engine, "SELECT count(*) FROM ticker WHERE source = 'kraken'") == 2


def test_a_bad_quote_is_quarantined_not_stored(
    poll_settings: Settings, engine: Engine, doubles: dict[str, VenueDouble]
) -> None:
    doubles["bitstamp"].price_factor = -1.0  # every price negative
    polls = poller(poll_settings, engine)
    polls.poll("bitstamp")
    assert scalar(engine, "SELECT count(*) FROM ticker WHERE source = 'bitstamp'") == 0
    [(source, reason)] = rows(engine, "SELECT source, reason FROM rejected_row")
    assert source == "venue_poll" and reason.startswith("non_positive_price")


def test_the_worker_polls_beside_the_stream_and_reports_the_venues(
    poll_settings: Settings, engine: Engine
) -> None:
    """Offline Gemini (nothing listens on its URLs): the worker keeps reconnecting, and the
    venues are polled all the same, their state in the worker's run row."""
    from etl.stream.worker import StreamWorker

    live = poll_settings.model_copy(
        update={
            "gemini_base_url": "http://127.0.0.1:9",
            "gemini_ws_url": "ws://127.0.0.1:9",
            "gemini_retries": 1,
            "stream_max_backoff_seconds": 0.2,
            "stream_report_seconds": 0.05,
        }
    )

    async def play() -> StreamWorker:
        worker = StreamWorker(live, engine, venue_config=FAST)
        task = asyncio.create_task(worker.run())
        try:
            async with asyncio.timeout(15):
                while (
                    scalar(engine, "SELECT count(*) FROM ticker WHERE source = 'kraken'") < 2
                    or worker.venues is None
                    or worker.venues.venues["bitstamp"].tickers < 2
                ):
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            worker.client.close()
        return worker

    worker = asyncio.run(play())
    [sources] = [r[0] for r in rows(engine, "SELECT sources FROM etl_run WHERE trigger = 'stream'")]
    stream = sources if isinstance(sources, dict) else json.loads(sources)
    venues = stream["stream"]["venues"]
    assert set(venues) == {"kraken", "bitstamp"}
    assert venues["kraken"]["tickers"] >= 2 and venues["kraken"]["down"] is False
    assert worker.status.connected is False  # Gemini never answered
