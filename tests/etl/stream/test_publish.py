"""The worker's Redis hook never makes the event loop wait on Redis: against a server that
accepts connections and never answers (a hung Redis), each call returns at once, and what
cannot be published is dropped from a bounded queue and counted. Against the real Redis,
queued updates arrive in order."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import cast

import pytest
import redis

from etl.read.updates import PriceUpdate, update_from_json
from etl.stream.gemini_v2 import Trade
from etl.stream.publish import RedisUpdates
from etl.stream.worker import StreamWorker
from tests.databases import require_redis

NO_PAIRS = cast(StreamWorker, SimpleNamespace(pairs={}))  # the hook reads only `pairs`


def trade(n: int) -> Trade:
    return Trade("BTCUSD", n, 1_000 + n, 100.0 + n, 0.5)


@pytest.fixture
def hung_redis() -> Iterator[redis.Redis]:
    """A listening socket nobody reads: connects succeed, every command hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
    yield client
    client.close()
    server.close()


def test_a_hung_redis_never_blocks_the_caller_and_the_queue_stays_bounded(
    hung_redis: redis.Redis,
) -> None:
    publisher = RedisUpdates(NO_PAIRS, hung_redis, "nowhere", max_queued=2)
    slowest = 0.0
    for n in range(10):
        started = time.perf_counter()
        publisher(trade(n))
        slowest = max(slowest, time.perf_counter() - started)
    # one publish would wait the 1 s socket timeout; the hook only queues
    assert slowest < 0.5
    assert publisher.dropped >= 1 and publisher.queue.qsize() <= 2
    publisher.close(timeout=6)  # each round trip fails after the 1 s timeout
    assert not publisher.queue.qsize()
    assert publisher.failed + publisher.dropped == 10  # every update accounted for
    assert publisher.published == 0


def test_queued_updates_reach_a_subscriber_in_order() -> None:
    client = redis.Redis.from_url(require_redis())
    channel = f"test-publish-{uuid.uuid4().hex[:8]}"
    listener = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    listener.subscribe(channel)
    listener.get_message(timeout=1)
    publisher = RedisUpdates(NO_PAIRS, client, channel)
    for n in range(1, 1_201):  # more than one round trip's worth
        publisher(trade(n))
    publisher.close(timeout=5)
    prices = []
    while (message := listener.get_message(timeout=1)) is not None:
        update = update_from_json(message["data"])
        assert isinstance(update, PriceUpdate)
        prices.append(update.price)
    listener.close()
    client.close()
    assert prices == [100.0 + n for n in range(1, 1_201)]
    assert (publisher.published, publisher.dropped, publisher.failed) == (1_200, 0, 0)
