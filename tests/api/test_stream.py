"""/api/crypto/stream against a real server (`python -m api.serve`) following the
database: events after rows are written, resuming, limits, slow clients, heartbeats, and
/latest invalidated by a new price. Redis mode and tokens: test_stream_redis.py,
test_stream_token.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from api.settings import get_api_settings
from etl.db.engine import create_db_engine
from etl.extract.gemini_client import GeminiClient, reset_breakers
from etl.pipeline import run_pipeline
from etl.sources.gemini import GeminiSource
from tests.api.helpers import KEY, OTHER_KEY, problem
from tests.api.sse_client import add_candle, add_tickers, now_ms, opened
from tests.gemini_double import GeminiDouble, start, stop
from tests.processes import launched_api

BTC, ETH = "BTCUSD", "ETHUSD"  # stored symbols; `?symbols=BTC` resolves the alias
SERVER = {
    "API_KEYS": f"{KEY},{OTHER_KEY}",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "STREAM_REDIS_URL": "",  # follow the database
    "STREAM_POLL_SECONDS": "0.05",
    "STREAM_HEARTBEAT_SECONDS": "0.3",
    "STREAM_MAX_PER_KEY": "2",
    "STREAM_CLIENT_QUEUE": "5",
    "STREAM_REPLAY": "10",
    "CACHE_TTL_SECONDS": "60",  # without invalidation, /latest would keep its old price
    "RATE_LIMIT_DEFAULT": "10000/minute",
}


@pytest.fixture(scope="module")
def server(api_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("stream") / "api.log"
    with launched_api(api_database, Path(log), **SERVER) as base:
        yield base


@pytest.fixture(scope="module")
def db(api_database: str) -> Iterator[Engine]:
    engine = create_db_engine(get_api_settings(database_url=api_database, _env_file=None))
    yield engine
    engine.dispose()


def test_new_ticker_rows_arrive_as_price_events(server: str, db: Engine) -> None:
    with opened(server, "?symbols=BTC") as stream:
        at = now_ms()
        add_tickers(db, ETH, [2000.0], at_ms=at)  # filtered out
        add_tickers(db, BTC, [65000.0], at_ms=at)
        frame = stream.next_event()
    assert frame.event == "price" and frame.id
    assert frame.json() == {
        "symbol": BTC,
        "price": 65000.0,
        "bid": 64999.5,
        "ask": 65000.5,
        "spread": 1.0,
        "as_of": frame.json()["as_of"],
        "source": "test",
    }
    assert frame.json()["as_of"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(at / 1000)))


def test_new_candle_rows_arrive_as_candle_events(server: str, db: Engine) -> None:
    opened_at = now_ms() // 60_000 * 60_000
    with opened(server, "?symbols=ETH") as stream:
        add_candle(db, ETH, opened_at, 2100.0)
        frame = stream.next_event()
    body = frame.json()
    assert frame.event == "candle" and frame.id
    assert body["symbol"] == ETH and body["interval"] == "1m" and body["source"] == "test"
    assert (body["open"], body["high"], body["low"], body["close"]) == (2099, 2101, 2098, 2100)
    assert body["volume"] == 3.5 and body["closed"] is False


def test_a_heartbeat_comment_comes_while_nothing_happens(server: str) -> None:
    with opened(server, "?symbols=BTC") as stream:
        frame = stream.next_frame(timeout=3)
    assert frame.comments and not frame.data


def test_last_event_id_resumes_after_that_event(server: str, db: Engine) -> None:
    with opened(server, "?symbols=BTC") as stream:
        add_tickers(db, BTC, [1.0, 2.0, 3.0], at_ms=now_ms())
        first = stream.next_event()
        assert first.json()["price"] == 1.0 and first.id
    with opened(server, "?symbols=BTC", headers={"X-API-Key": KEY, "Last-Event-ID": first.id}) as s:
        assert [s.next_event().json()["price"] for _ in range(2)] == [2.0, 3.0]
    # Pushed out of the replay buffer (10 events) by later ones: a reset, then live events.
    for _ in range(3):
        add_tickers(db, BTC, [4.0, 5.0, 6.0, 7.0], at_ms=now_ms())
        time.sleep(0.2)
    with opened(server, "?symbols=BTC", headers={"X-API-Key": KEY, "Last-Event-ID": first.id}) as s:
        reset = s.next_event()
        add_tickers(db, BTC, [8.0], at_ms=now_ms())
        live = s.next_event()
    assert reset.event == "reset" and "no longer kept" in reset.json()["detail"]
    assert live.event == "price" and live.json()["price"] == 8.0


def test_an_unknown_last_event_id_gets_a_reset(server: str) -> None:
    headers = {"X-API-Key": KEY, "Last-Event-ID": "otherhub-5"}
    with opened(server, headers=headers) as stream:
        assert stream.next_event().event == "reset"


def test_a_key_gets_at_most_its_limit_of_concurrent_streams(server: str) -> None:
    with opened(server) as _, opened(server) as _:
        third = httpx.get(f"{server}/api/crypto/stream", headers={"X-API-Key": KEY}, timeout=5)
        assert third.status_code == 429 and problem(third)["code"] == "too_many_streams"
        # Another key has its own allowance.
        with opened(server, headers={"X-API-Key": OTHER_KEY}) as other:
            assert other.response.status_code == 200
    # Closed streams give their places back (the server notices the disconnect).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with opened(server) as _, opened(server) as again:
            assert again.response.status_code == 200
            break


def test_a_client_too_far_behind_is_dropped_with_an_error(server: str, db: Engine) -> None:
    with opened(server, "?symbols=BTC") as stream:
        # One transaction of 20: one poll queues them at once, over the bound of 5.
        add_tickers(db, BTC, [float(n) for n in range(20)], at_ms=now_ms())
        frame = stream.next_event()
        while frame.event == "price":
            frame = stream.next_event()
        assert frame.event == "error" and "behind" in frame.json()["detail"]
        assert stream.rest() == []  # the server ended the stream


def test_latest_shows_a_new_price_within_a_second(server: str, db: Engine) -> None:
    keyed = {"X-API-Key": KEY}
    before = httpx.get(f"{server}/api/crypto/latest?symbols=BTC", headers=keyed, timeout=5)
    assert before.status_code == 200
    add_tickers(db, BTC, [123456.5], at_ms=now_ms())
    deadline, price = time.monotonic() + 1.0, None
    while time.monotonic() < deadline and price != 123456.5:
        time.sleep(0.05)
        answer = httpx.get(f"{server}/api/crypto/latest?symbols=BTC", headers=keyed, timeout=5)
        price = answer.json()["data"][0]["price"]
    assert price == 123456.5


def test_rows_written_by_the_real_pipeline_reach_clients(
    server: str, api_database: str, db: Engine
) -> None:
    """The batch pipeline's Gemini step (against the local double) as the writer."""
    double = start(GeminiDouble(now_ms=now_ms(), candle_count=3))
    reset_breakers()
    settings = get_api_settings(
        database_url=api_database,
        gemini_base_url=double.url,
        coin_ids=["bitcoin"],
        gemini_candle_intervals=["1h"],
        _env_file=None,
    )
    client = GeminiClient(settings)
    try:
        with opened(server, "?symbols=BTC") as stream:
            summary = run_pipeline(settings, sources=[GeminiSource(client)], engine=db)
            assert summary.status == "success", summary.error
            frames = [stream.next_event() for _ in range(4)]  # 1 ticker, 3 hourly bars
    finally:
        client.close()
        stop(double)
        reset_breakers()
    prices = [f.json() for f in frames if f.event == "price"]
    bars = [f.json() for f in frames if f.event == "candle"]
    assert len(prices) == 1 and prices[0]["symbol"] == BTC and prices[0]["source"] == "gemini"
    assert len(bars) == 3 and {bar["interval"] for bar in bars} == {"1h"}
    assert all(bar["symbol"] == BTC and bar["source"] == "gemini" for bar in bars)


@pytest.mark.parametrize(
    "query",
    [
        "?symbols=" + "x" * 40,
        "?symbols=BTC;ETH",
        "?symbols=" + ",".join(["BTC"] * 51),
        "?token=" + "t" * 600,
    ],
)
def test_bad_stream_parameters_are_a_422_problem_before_any_stream(server: str, query: str) -> None:
    answer = httpx.get(f"{server}/api/crypto/stream{query}", headers={"X-API-Key": KEY}, timeout=5)
    assert answer.status_code == 422
    assert problem(answer)["code"] == "validation_error"
