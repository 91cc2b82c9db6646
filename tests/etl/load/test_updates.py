"""The publish side of streaming: one JSON message per update on the Redis channel, in the
shape the API's hub decodes (a real Redis, a real subscriber)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from etl.load.updates import publish_candle, publish_price
from etl.read.updates import CandleUpdate, PriceUpdate, update_from_json
from tests.databases import require_redis


@pytest.fixture
def channel_and_client() -> Iterator[tuple[str, redis.Redis]]:
    client = redis.Redis.from_url(require_redis())
    yield f"test-{uuid.uuid4().hex[:8]}", client
    client.close()


def _received(client: redis.Redis, channel: str, publish: object) -> list[bytes]:
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(channel)
    pubsub.get_message(timeout=1)  # the subscription's confirmation
    assert callable(publish)
    assert publish() == 1  # one subscriber heard it
    message = pubsub.get_message(timeout=2)
    pubsub.close()
    assert message is not None
    return [message["data"]]


def test_a_published_price_decodes_to_the_same_update(
    channel_and_client: tuple[str, redis.Redis],
) -> None:
    channel, client = channel_and_client
    [data] = _received(
        client,
        channel,
        lambda: publish_price(
            client,
            symbol="BTCUSD",
            source="gemini",
            price=1.5,
            bid=1.0,
            ask=2.0,
            as_of_ms=1_000,
            channel=channel,
        ),
    )
    assert update_from_json(data) == PriceUpdate("BTCUSD", "gemini", 1.5, 1.0, 2.0, 1_000)


def test_a_published_candle_decodes_to_the_same_update(
    channel_and_client: tuple[str, redis.Redis],
) -> None:
    channel, client = channel_and_client
    [data] = _received(
        client,
        channel,
        lambda: publish_candle(
            client,
            symbol="ETHUSD",
            source="gemini",
            interval="1m",
            open_time_ms=0,
            close_time_ms=60_000,
            ohlc=(1, 2, 0.5, 1.5),
            volume=None,
            closed=False,
            channel=channel,
        ),
    )
    assert update_from_json(data) == CandleUpdate(
        "ETHUSD", "gemini", "1m", 0, 60_000, 1, 2, 0.5, 1.5, None, closed=False
    )


def test_nobody_listening_is_not_an_error(channel_and_client: tuple[str, redis.Redis]) -> None:
    channel, client = channel_and_client
    sent = publish_price(
        client, symbol="X", source="s", price=1, bid=None, ask=None, as_of_ms=0, channel=channel
    )
    assert sent == 0
