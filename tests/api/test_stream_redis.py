"""/api/crypto/stream with Redis: updates published on the channel (as the stream worker
will publish them, `etl.load.updates`) reach every subscribed API process's clients."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from etl.load.updates import publish_candle, publish_price
from tests.api.helpers import KEY
from tests.api.sse_client import now_ms, opened
from tests.databases import require_redis
from tests.processes import launched_api


@pytest.fixture(scope="module")
def channel() -> str:
    return f"test-updates-{uuid.uuid4().hex[:8]}"  # no other test's server hears it


@pytest.fixture(scope="module")
def publisher() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(require_redis())
    yield client
    client.close()


@pytest.fixture(scope="module")
def servers(
    api_database: str, channel: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Two API processes on one Redis channel, as two replicas would be."""
    environment = {
        "API_KEY": KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "STREAM_REDIS_URL": require_redis(),
        "STREAM_REDIS_CHANNEL": channel,
        "STREAM_POLL_SECONDS": "60",  # proves nothing comes from the database
    }
    logs = tmp_path_factory.mktemp("stream-redis")
    with (
        launched_api(api_database, Path(logs / "a.log"), **environment) as first,
        launched_api(api_database, Path(logs / "b.log"), **environment) as second,
    ):
        yield [first, second]


def _wait_for_subscribers(client: redis.Redis, channel: str, count: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        counts: list[tuple[bytes, int]] = client.pubsub_numsub(channel)  # type: ignore[assignment]
        if dict(counts).get(channel.encode(), 0) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"the API processes did not subscribe to {channel}")


def test_a_published_price_reaches_clients_of_every_api_process(
    servers: list[str], publisher: redis.Redis, channel: str
) -> None:
    _wait_for_subscribers(publisher, channel, 2)
    with opened(servers[0], "?symbols=BTC") as one, opened(servers[1], "?symbols=BTC") as two:
        at = now_ms()
        for symbol, price in (("ETHUSD", 5.0), ("BTCUSD", 100.0)):
            publish_price(
                publisher,
                symbol=symbol,
                source="gemini",
                price=price,
                bid=price - 1,
                ask=price + 1,
                as_of_ms=at,
                channel=channel,
            )
        frames = [one.next_event(), two.next_event()]
    for frame in frames:
        assert frame.event == "price" and frame.id
        body = frame.json()
        assert (body["symbol"], body["price"], body["spread"]) == ("BTCUSD", 100.0, 2.0)
        assert body["source"] == "gemini" and body["as_of"].endswith("+00:00")


def test_a_published_candle_reaches_clients(
    servers: list[str], publisher: redis.Redis, channel: str
) -> None:
    _wait_for_subscribers(publisher, channel, 2)
    opened_at = now_ms() // 60_000 * 60_000
    with opened(servers[0], "?symbols=ETH") as stream:
        publish_candle(
            publisher,
            symbol="ETHUSD",
            source="gemini",
            interval="1m",
            open_time_ms=opened_at,
            close_time_ms=opened_at + 60_000,
            ohlc=(1.0, 4.0, 0.5, 3.0),
            volume=7.0,
            closed=True,
            channel=channel,
        )
        frame = stream.next_event()
    body = frame.json()
    assert frame.event == "candle"
    assert (body["open"], body["high"], body["low"], body["close"]) == (1.0, 4.0, 0.5, 3.0)
    assert body["closed"] is True and body["volume"] == 7.0 and body["interval"] == "1m"


def test_a_malformed_message_is_skipped_and_the_stream_goes_on(
    servers: list[str], publisher: redis.Redis, channel: str
) -> None:
    _wait_for_subscribers(publisher, channel, 2)
    with opened(servers[0], "?symbols=BTC") as stream:
        publisher.publish(channel, b'{"kind": "price", "symbol": ')
        publisher.publish(channel, b'{"kind": "trade"}')
        publish_price(
            publisher,
            symbol="BTCUSD",
            source="gemini",
            price=7.0,
            bid=None,
            ask=None,
            as_of_ms=now_ms(),
            channel=channel,
        )
        frame = stream.next_event()
    assert frame.json()["price"] == 7.0 and frame.json()["spread"] is None
