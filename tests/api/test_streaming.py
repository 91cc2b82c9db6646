"""The stream hub's bookkeeping without a server: caps, resuming, and the hot cache's
invalidation that makes a new price visible on /latest at once."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from api.errors import Problem
from api.main import create_app
from api.responses import HotCache
from api.streaming import StreamHub
from etl.read.updates import PriceUpdate
from tests.api.helpers import KEY, api_settings


def _hub(**overrides: object) -> StreamHub:
    return StreamHub(api_settings("sqlite://", **overrides), HotCache(0))


def _price(value: float) -> PriceUpdate:
    return PriceUpdate("BTCUSD", "test", value, None, None, 0)


def test_past_the_global_cap_a_stream_is_refused_with_503() -> None:
    hub = _hub(stream_max_clients=3, stream_max_per_key=5)
    for key in ("a", "b", "c"):
        hub.subscribe(key, None)
    with pytest.raises(Problem) as refused:
        hub.subscribe("d", None)
    assert (refused.value.status, refused.value.code) == (503, "stream_capacity")


def test_an_unsubscribed_stream_gives_its_place_back() -> None:
    hub = _hub(stream_max_per_key=1)
    first = hub.subscribe("a", None)
    with pytest.raises(Problem) as refused:
        hub.subscribe("a", None)
    assert refused.value.status == 429
    hub.unsubscribe(first)
    hub.unsubscribe(first)  # twice (the route's finally after a drop) counts once
    assert hub.subscribe("a", None).key == "a"


def test_resume_gives_the_kept_events_after_the_id_for_the_symbols() -> None:
    hub = _hub(stream_replay=3)
    subscriber = hub.subscribe("a", None)
    for value in (1.0, 2.0, 3.0, 4.0):
        hub.publish(_price(value))
    ids = hub.take(subscriber)
    assert ids is not None and len(ids) == 4
    first, second = (event.id for event in ids[:2])
    kept = hub.resume(second, None)
    assert not kept.lost and [e.id for e in kept.events] == [e.id for e in ids[2:]]
    assert [e.id for e in hub.resume(first, None, until=3).events] == [ids[1].id, ids[2].id]
    assert hub.resume(second, frozenset({"ETHUSD"})).events == []
    assert hub.resume(first, None).lost is False  # the event just before the buffer
    assert hub.resume(f"{hub.hub_id}-0", None).lost is True  # older: pushed out
    assert hub.resume(f"{hub.hub_id}-99", None).lost is True  # never sent
    assert hub.resume("x", None).lost is True


def test_invalidate_drops_matching_entries_and_a_render_begun_before_it() -> None:
    async def scenario() -> list[bytes]:
        cache = HotCache(ttl_seconds=60)
        await cache.get("latest?BTC", lambda: b"old")
        await cache.get("symbols", lambda: b"kept")
        assert cache.invalidate("latest?") == 1
        assert (await cache.get("latest?BTC", lambda: b"new")).body == b"new"
        # A render that started before an invalidation must not be kept after it.
        started, release = threading.Event(), threading.Event()

        def slow() -> bytes:
            started.set()
            release.wait(5)
            return b"before"

        racing = asyncio.create_task(cache.get("latest?ETH", slow))
        await asyncio.to_thread(started.wait, 5)
        cache.invalidate("latest?")
        release.set()
        await racing
        return [
            (await cache.get("latest?ETH", lambda: b"after")).body,
            (await cache.get("symbols", lambda: b"other")).body,
        ]

    assert asyncio.run(scenario()) == [b"after", b"kept"]


def test_stop_waits_for_the_database_read_under_way(engine: Engine) -> None:
    """Stopping mid-read must not abandon the read's thread: it would still be querying
    while the engine is disposed (on PostgreSQL, a schema drop then deadlocked with it)."""
    reading, finished = threading.Event(), threading.Event()

    @event.listens_for(engine, "after_cursor_execute")
    def slow(*_: object) -> None:
        reading.set()
        time.sleep(0.3)
        finished.set()

    async def scenario() -> None:
        hub = _hub(stream_redis_url="", stream_poll_seconds=0.01)
        await hub.start(engine)
        await asyncio.to_thread(reading.wait, 5)
        await hub.stop()

    asyncio.run(scenario())
    assert reading.is_set() and finished.is_set()


def test_overlapping_lifespans_of_one_app_each_stop_their_own_follower(engine: Engine) -> None:
    """Test tools run an app's lifespan in an event loop of their own, sometimes two at
    once (schemathesis inside a TestClient): each must stop the follower it started."""
    app = create_app(api_settings(str(engine.url.render_as_string(hide_password=False))))
    with TestClient(app) as outer:
        with TestClient(app) as inner:
            assert inner.get("/api/crypto/latest", headers={"X-API-Key": KEY}).status_code == 200
            time.sleep(0.3)  # both followers poll (every 0.25 s by default)
        assert outer.get("/api/crypto/latest", headers={"X-API-Key": KEY}).status_code == 200
        time.sleep(0.3)  # the outer follower still polls, in its own loop


def test_each_client_reads_the_one_log_from_its_own_cursor() -> None:
    """An event is encoded once; a client gets its symbols' frames, several per write,
    and one more than STREAM_CLIENT_QUEUE events behind is dropped."""
    hub = _hub(stream_client_queue=5, stream_replay=2)
    btc, eth = hub.subscribe("a", frozenset({"BTCUSD"})), hub.subscribe("b", None)
    hub.publish(_price(1.0))
    hub.publish(PriceUpdate("ETHUSD", "test", 2.0, None, None, 0))
    hub.publish(_price(3.0))

    async def writes() -> tuple[bytes | None, bytes | None]:
        return await hub.frames(btc), await hub.frames(eth)

    to_btc, to_eth = asyncio.run(writes())
    assert to_btc is not None and to_eth is not None
    assert to_btc.count(b"event: price") == 2 and b"ETHUSD" not in to_btc
    assert to_eth.count(b"event: price") == 3  # all three in one write
    assert hub.take(btc) == []  # nothing new
    for value in range(6):
        hub.publish(_price(float(value)))
    assert btc.dropped and eth.dropped  # six behind, the bound is five
    assert hub.take(btc) is None
    assert asyncio.run(hub.frames(eth)) is None


def test_a_write_holds_at_most_its_batch_and_the_rest_follows() -> None:
    hub = _hub(stream_client_queue=1000)
    reader = hub.subscribe("a", None)
    for value in range(10):
        hub.publish(_price(float(value)))
    first = hub.take(reader, most=4)
    assert first is not None and len(first) == 4
    assert reader.ready.is_set()  # more is waiting
    rest = hub.take(reader)
    assert rest is not None and [e.id for e in rest] == [f"{hub.hub_id}-{n}" for n in range(5, 11)]
