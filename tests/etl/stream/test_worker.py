"""The stream worker end to end, on both databases: the WebSocket double (tests/
gemini_ws_double.py) for live data, the REST double (tests/gemini_double.py) for the pair
list and the backfill. Every scenario is bounded by a timeout and checks the stored 1m
series bar by bar against what the doubles sent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import Engine
from websockets.asyncio.client import connect

from etl.core.settings import Settings
from etl.extract.gemini_client import reset_breakers
from etl.read.runs import StreamReport, stream_report
from etl.read.updates import CandleUpdate as BarUpdate
from etl.read.updates import PriceUpdate, update_from_json
from etl.stream.gemini_v2 import Event, Trade
from etl.stream.publish import RedisUpdates
from etl.stream.worker import PairState, StreamWorker, _ticker
from tests import series_oracle
from tests.databases import require_redis
from tests.etl.read.rollup_checks import every_rollup_as_resampled
from tests.gemini_double import GeminiDouble, start, stop
from tests.gemini_ws_double import (
    DROP,
    STALL,
    GeminiWsDouble,
    candles,
    l2_snapshot,
    l2_update,
    minute_bars,
    pause,
    send,
    trade,
    trade_body,
)
from tests.helpers import rows, scalar

REST_PATH = "/v2/candles/btcusd/1m"
T0 = (int(time.time() * 1000) // 60_000 - 30) * 60_000  # half an hour ago, a whole minute
TRUTH = minute_bars(T0, 10)
SERIES = (
    "SELECT open_time, open, high, low, close, volume FROM candle "
    "WHERE source = 'gemini' AND interval = '1m' ORDER BY open_time"
)
SNAPSHOT = l2_snapshot(
    "BTCUSD",
    [("99.5", "2"), ("99", "1")],
    [("100.5", "1")],
    [trade_body("BTCUSD", 1, T0 + 1_000, "100.25")],
)


@pytest.fixture
def rest() -> Iterator[GeminiDouble]:
    double = start(GeminiDouble(now_ms=int(time.time() * 1000)))
    double.overrides[REST_PATH] = []
    reset_breakers()
    yield double
    stop(double)
    reset_breakers()


def serve_rest(rest: GeminiDouble, bars: list[list[float]]) -> None:
    rest.overrides[REST_PATH] = sorted(bars, key=lambda r: r[0], reverse=True)


def stored(engine: Engine) -> list[list[float]]:
    return [[float(v) for v in row] for row in rows(engine, SERIES)]


def expected(bars: list[list[float]]) -> list[list[float]]:
    return [[float(v) for v in bar] for bar in bars]


def stream_settings(settings: Settings, rest: GeminiDouble, ws: GeminiWsDouble) -> Settings:
    return settings.model_copy(
        update={
            "gemini_base_url": rest.url,
            "gemini_ws_url": ws.url,
            "gemini_read_timeout": 0.5,
            "gemini_backoff_seconds": 0.01,
            "gemini_backoff_max_seconds": 0.02,
            "gemini_requests_per_minute": 120,
            "gemini_burst": 10,
            "coin_ids": ["bitcoin", "cardano"],
            "stream_idle_seconds": 2.0,
            "stream_max_backoff_seconds": 0.2,
            "stream_batch_seconds": 0.1,
        }
    )


async def run_until(worker: StreamWorker, done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Run the worker until `done()` holds (checked every 50 ms), then stop it as a signal
    would; a worker crash or the timeout fails the test."""
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(timeout):
            while not done():
                if task.done():
                    task.result()
                    pytest.fail("the worker stopped by itself")
                await asyncio.sleep(0.05)
    finally:
        task.cancel()  # as SIGTERM does in `python -m etl.stream`
        finished, _ = await asyncio.wait({task}, timeout=5)
        if not finished:
            pytest.fail("the worker did not stop within 5 s of being cancelled")
        with contextlib.suppress(asyncio.CancelledError):
            task.result()


def scenario(
    settings: Settings,
    engine: Engine,
    rest: GeminiDouble,
    prepare: Callable[[GeminiWsDouble], None],
    done: Callable[[StreamWorker], bool],
    overrides: dict[str, Any] | None = None,
    configure: Callable[[StreamWorker], None] | None = None,
    **worker_args: Any,
) -> tuple[StreamWorker, GeminiWsDouble]:
    async def play() -> tuple[StreamWorker, GeminiWsDouble]:
        ws = await GeminiWsDouble().start()
        prepare(ws)
        live = stream_settings(settings, rest, ws).model_copy(update=overrides or {})
        worker = StreamWorker(live, engine, **worker_args)
        if configure is not None:
            configure(worker)
        try:
            await run_until(worker, lambda: done(worker))
        finally:
            worker.client.close()
            await ws.stop()
        return worker, ws

    return asyncio.run(play())


def sessions(engine: Engine) -> list[Any]:
    return rows(
        engine,
        "SELECT messages, bad_messages, reconnect_reason, last_error, ended_at "
        "FROM stream_session ORDER BY id",
    )


def test_live_bars_and_tickers_are_stored_and_repeats_change_nothing(
    settings: Settings, engine: Engine, rest: GeminiDouble
) -> None:
    serve_rest(rest, TRUTH[:2])
    early = [*TRUTH[4][:4], TRUTH[4][4] - 0.25, TRUTH[4][5] - 0.5]  # the bar before it grew
    seen: list[Event] = []

    def prepare(ws: GeminiWsDouble) -> None:
        ws.script(
            send(SNAPSHOT),
            send(candles("BTCUSD", TRUTH[2], TRUTH[1])),
            send(candles("BTCUSD", TRUTH[3])),
            send(candles("BTCUSD", TRUTH[4])),
            send(candles("BTCUSD", early)),  # out of order: an older version, late
            send(candles("BTCUSD", TRUTH[3])),  # a repeat
            send(trade("BTCUSD", 2, T0 + 2_000, "100.75")),
            send(l2_update("BTCUSD", ("buy", "99.5", "0"))),
        )

    def done(worker: StreamWorker) -> bool:
        return worker.status.messages >= 8 and len(stored(engine)) == 5

    worker, ws = scenario(settings, engine, rest, prepare, done, on_update=seen.append)
    assert stored(engine) == expected(TRUTH[:5])
    assert series_oracle.assert_stored_equals_full_scan(engine) == 1

    assert every_rollup_as_resampled(engine) > 0  # late and repeated bars included
    [subscribe] = ws.subscriptions  # Cardano has no Gemini pair: BTC only
    assert subscribe["subscriptions"][0] == {"name": "l2", "symbols": ["BTCUSD"]}
    bid, ask, last = rows(
        engine, "SELECT bid, ask, last FROM ticker WHERE source = 'gemini' ORDER BY observed_at"
    )[-1]
    assert (bid, ask, last) == (99.0, 100.5, 100.75)
    assert [e.price for e in seen if isinstance(e, Trade)] == [100.25, 100.75]
    assert worker.status.bad_messages == 0
    [session] = sessions(engine)
    assert session[0] >= 8  # the script, then heartbeats until stopped
    assert (session[1], session[2]) == (0, "stopped")
    assert session[4] is not None  # ended


def test_a_drop_mid_stream_is_backfilled_from_rest_without_a_hole(
    settings: Settings, engine: Engine, rest: GeminiDouble
) -> None:
    def prepare(ws: GeminiWsDouble) -> None:
        # What REST has when each connection opens: minutes 4-7 pass while disconnected
        # and are never sent on the stream.
        ws.on_connect = lambda n: serve_rest(rest, TRUTH[:3] if n == 0 else TRUTH)
        ws.script(send(SNAPSHOT), send(candles("BTCUSD", TRUTH[3], TRUTH[2])), pause(0.2), DROP)
        ws.script(send(SNAPSHOT), send(candles("BTCUSD", TRUTH[9], TRUTH[8])))

    def done(worker: StreamWorker) -> bool:
        return len(stored(engine)) == 10 and worker.status.connected

    worker, ws = scenario(settings, engine, rest, prepare, done)
    assert stored(engine) == expected(TRUTH)
    assert rest.count(REST_PATH) == 2  # one backfill per connection
    assert series_oracle.assert_stored_equals_full_scan(engine) == 1
    assert ws.connections == 2
    first, second = sessions(engine)
    assert (first[0], first[2]) == (2, "closed")
    assert "connection closed" in first[3]
    assert second[2] == "stopped"
    assert worker.status.reconnects == 1


def test_a_silent_stall_trips_the_watchdog_and_reconnects(
    settings: Settings, engine: Engine, rest: GeminiDouble
) -> None:
    def prepare(ws: GeminiWsDouble) -> None:
        serve_rest(rest, TRUTH[:1])
        ws.script(send(SNAPSHOT), send(candles("BTCUSD", TRUTH[1])), STALL)
        ws.script(send(SNAPSHOT), send(candles("BTCUSD", TRUTH[2])))

    def done(worker: StreamWorker) -> bool:
        return len(stored(engine)) == 3

    started = time.monotonic()
    worker, ws = scenario(settings, engine, rest, prepare, done)
    assert time.monotonic() - started < 8  # the idle limit (2 s), not a TCP timeout
    assert stored(engine) == expected(TRUTH[:3])
    first = sessions(engine)[0]
    assert (first[0], first[2]) == (2, "idle")
    assert first[3] == "no message for 2.0 s"
    assert ws.connections == 2


def test_bad_messages_are_quarantined_counted_and_the_stream_goes_on(
    settings: Settings, engine: Engine, rest: GeminiDouble
) -> None:
    bad = [
        "{not json",
        '{"type":"trade","symbol":"BTCUSD","event_id":9,"timest',  # truncated
        json.dumps({"type": "auction_open", "symbol": "BTCUSD"}),
        trade("BTCUSD", 3, T0 + 3_000, "-1"),
        l2_update("BTCUSD", ("buy", "101", "1")),  # bid above the best ask: crossed
        candles("DOGEUSD", TRUTH[0]),  # a pair it never subscribed to
    ]

    def prepare(ws: GeminiWsDouble) -> None:
        ws.script(send(SNAPSHOT), *(send(text) for text in bad), send(candles("BTCUSD", TRUTH[0])))

    def done(worker: StreamWorker) -> bool:
        return len(stored(engine)) == 1

    worker, _ = scenario(settings, engine, rest, prepare, done)
    assert stored(engine) == expected(TRUTH[:1])
    quarantined = rows(engine, "SELECT source, reason, raw FROM rejected_row ORDER BY id")
    assert [r[0] for r in quarantined] == ["gemini_ws"] * 6
    assert [r[2] for r in quarantined] == bad
    reasons = [r[1].split(":")[0] for r in quarantined]
    assert reasons == [
        "malformed_json",
        "malformed_json",
        "bad_shape",
        "bad_shape",
        "crossed_book",
        "unknown_symbol",
    ]
    assert worker.status.bad_messages == 6
    assert sessions(engine)[0][1] == 6
    assert scalar(engine, "SELECT status FROM etl_run WHERE trigger = 'stream'") == "partial"


def test_refused_connections_back_off_with_one_warning_per_step(
    settings: Settings, engine: Engine, rest: GeminiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    def prepare(ws: GeminiWsDouble) -> None:
        serve_rest(rest, [])
        ws.refuse = 4
        ws.script(send(SNAPSHOT), send(candles("BTCUSD", TRUTH[0])))

    def done(worker: StreamWorker) -> bool:
        return len(stored(engine)) == 1

    with caplog.at_level(logging.WARNING, logger="etl.stream.worker"):
        worker, ws = scenario(settings, engine, rest, prepare, done)
    assert ws.refused == 4
    assert worker.status.reconnects == 4
    assert "503" in (worker.status.last_error or "")
    # The cap (0.2 s) is below the first step (1 s): every wait is the same step, one warning.
    warnings = [r for r in caplog.records if r.getMessage() == "stream reconnecting"]
    assert len(warnings) == 1
    assert stored(engine) == expected(TRUTH[:1])
    assert len(sessions(engine)) == 1  # refused handshakes are no sessions


def test_the_double_refuses_a_subscription_with_no_valid_pair() -> None:
    async def play() -> Any:
        ws = await GeminiWsDouble().start()
        try:
            async with connect(ws.url) as client:
                await client.send(
                    json.dumps(
                        {
                            "type": "subscribe",
                            "subscriptions": [{"name": "l2", "symbols": ["btcusd"]}],
                        }
                    )
                )
                return json.loads(await asyncio.wait_for(client.recv(), 2))
        finally:
            await ws.stop()

    assert asyncio.run(play()) == {"result": "error", "reason": "NoValidTradingPairs"}


def test_writes_are_batched_by_update_count_not_per_message(
    settings: Settings, engine: Engine, rest: GeminiDouble
) -> None:
    # The snapshot is 2 updates (book, its trade); 50 trades follow. With 20 updates per
    # batch and a period longer than the test, that is at most 2 writes by count (fewer
    # when one is still under way as the next is due) and 1 on stop: one ticker per write,
    # not one per message, and the newest is never lost, however fast they come.
    trades = [trade("BTCUSD", 100 + i, T0 + 5_000 + i, f"{101 + i / 100:.2f}") for i in range(50)]

    def prepare(ws: GeminiWsDouble) -> None:
        ws.script(send(SNAPSHOT), *(send(t) for t in trades))

    def done(worker: StreamWorker) -> bool:
        return worker.status.messages >= 51

    overrides = {"stream_batch_seconds": 30.0, "stream_batch_updates": 20}
    scenario(settings, engine, rest, prepare, done, overrides)
    lasts = [r[0] for r in rows(engine, "SELECT last FROM ticker ORDER BY observed_at")]
    assert 2 <= len(lasts) <= 3
    assert lasts[-1] == 101.49  # the final write on stop holds the newest trade


def test_a_session_of_refusals_is_unhealthy_and_backs_off(
    settings: Settings, engine: Engine, rest: GeminiDouble, caplog: pytest.LogCaptureFixture
) -> None:
    refusal = send(json.dumps({"result": "error", "reason": "NoValidTradingPairs"}))

    def prepare(ws: GeminiWsDouble) -> None:
        ws.script(refusal, DROP)
        ws.script(refusal, DROP)
        ws.script(send(SNAPSHOT), send(candles("BTCUSD", TRUTH[0])))

    def done(worker: StreamWorker) -> bool:
        return len(stored(engine)) == 1

    with caplog.at_level(logging.WARNING, logger="etl.stream.worker"):
        worker, ws = scenario(settings, engine, rest, prepare, done)
    assert ws.connections == 3
    assert [r.getMessage() for r in caplog.records].count("stream reconnecting") == 1
    reasons = [r[0] for r in rows(engine, "SELECT reason FROM rejected_row ORDER BY id")]
    assert reasons == ["exchange_error: NoValidTradingPairs"] * 2
    assert [s[2] for s in sessions(engine)] == ["closed", "closed", "stopped"]


def test_live_updates_are_published_to_redis_on_receipt(
    settings: Settings, engine: Engine, rest: GeminiDouble
) -> None:
    """The worker's Redis hook: each live trade a price (with the book's top at that
    moment), each candle update its newest bar, in the messages the API's hub reads."""
    url = require_redis()
    channel = f"test-updates-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url)
    listener = client.pubsub()  # type: ignore[no-untyped-call]
    listener.subscribe(channel)
    serve_rest(rest, TRUTH[:2])

    def prepare(ws: GeminiWsDouble) -> None:
        ws.script(
            send(SNAPSHOT),
            send(candles("BTCUSD", TRUTH[2])),
            send(trade("BTCUSD", 2, T0 + 2_000, "100.75")),
        )

    def done(worker: StreamWorker) -> bool:
        return worker.status.messages >= 3

    publishers: list[RedisUpdates] = []

    def hooked(worker: StreamWorker) -> None:
        publishers.append(RedisUpdates(worker, client, channel))
        worker.on_update = publishers[0]

    scenario(settings, engine, rest, prepare, done, configure=hooked)
    publishers[0].close()
    assert (publishers[0].published, publishers[0].dropped, publishers[0].failed) == (2, 0, 0)
    updates = []
    while (message := listener.get_message(timeout=1)) is not None:
        if message["type"] == "message":
            updates.append(update_from_json(message["data"]))
    listener.close()
    prices = [u for u in updates if isinstance(u, PriceUpdate)]
    bars = [u for u in updates if isinstance(u, BarUpdate)]
    assert [(p.symbol, p.source, p.price, p.bid, p.ask) for p in prices] == [
        ("BTCUSD", "gemini", 100.75, 99.5, 100.5)
    ]
    assert [(b.symbol, b.open_time, b.close, b.closed) for b in bars] == [
        ("BTCUSD", int(TRUTH[2][0]), TRUTH[2][4], True)
    ]


def test_connections_are_opened_at_most_at_the_documented_request_rate(
    settings: Settings, engine: Engine, rest: GeminiDouble
) -> None:
    """Each connection carries good data and drops: without the cap it would be reopened
    at once, again and again. With 4 requests per window (two connections, a connection
    costing a connect and a subscribe), no window holds a third."""
    serve_rest(rest, [])

    def prepare(ws: GeminiWsDouble) -> None:
        for bar in TRUTH[:4]:
            ws.script(send(SNAPSHOT), send(candles("BTCUSD", bar)), DROP)

    def done(worker: StreamWorker) -> bool:
        return worker.status.reconnects >= 4

    window = 0.6
    _, ws = scenario(
        settings,
        engine,
        rest,
        prepare,
        done,
        overrides={"stream_requests_per_minute": 4},
        request_window_seconds=window,
    )
    times = ws.handshakes
    assert len(times) >= 4
    gaps = [later - first for first, later in zip(times, times[2:], strict=False)]
    assert min(gaps) >= window * 0.95
    assert stored(engine) == expected(TRUTH[:4])  # throttled, nothing lost


def run_row(engine: Engine, run_id: str) -> Any:
    return rows(engine, f"SELECT status, finished_at FROM etl_run WHERE id = '{run_id}'")[0]


def test_the_worker_reports_its_state_in_its_run_row_while_it_runs(
    settings: Settings, engine: Engine, rest: GeminiDouble
) -> None:
    serve_rest(rest, [])
    seen: list[StreamReport] = []

    def prepare(ws: GeminiWsDouble) -> None:
        ws.script(send(SNAPSHOT), send(candles("BTCUSD", TRUTH[0])))

    def done(worker: StreamWorker) -> bool:
        with engine.connect() as conn:
            report = stream_report(conn, int(time.time() * 1000))
        if report is not None and report.messages >= 3:
            seen.append(report)
        return bool(seen)

    worker, _ = scenario(
        settings, engine, rest, prepare, done, overrides={"stream_report_seconds": 0.05}
    )
    [live] = seen
    assert live.run_id == worker.run_id
    assert (live.state, live.connected, live.bad_messages) == ("connected", True, 0)
    assert live.since_ms is not None and live.last_message_ms is not None
    with engine.connect() as conn:
        final = stream_report(conn, int(time.time() * 1000))
    assert final is not None
    assert (final.state, final.connected) == ("stopped", False)
    assert final.messages == worker.status.messages
    assert run_row(engine, worker.run_id)[0] == "success"


def test_an_unreachable_exchange_is_reported_disconnected_with_its_error(
    settings: Settings, engine: Engine, rest: GeminiDouble
) -> None:
    seen: list[StreamReport] = []

    def prepare(ws: GeminiWsDouble) -> None:
        ws.refuse = 100

    def done(worker: StreamWorker) -> bool:  # noqa: ARG001
        with engine.connect() as conn:
            report = stream_report(conn, int(time.time() * 1000))
        if report is not None and report.last_error:
            seen.append(report)
        return bool(seen)

    scenario(settings, engine, rest, prepare, done, overrides={"stream_report_seconds": 0.05})
    assert (seen[0].state, seen[0].connected) == ("disconnected", False)
    assert "503" in (seen[0].last_error or "")


def test_a_ten_minute_outage_leaves_no_hole_and_the_ledger_says_what_happened(
    settings: Settings, engine: Engine, rest: GeminiDouble
) -> None:
    """The exchange drops the stream, then refuses every connection while ten minutes go
    by; when it is back, REST has those minutes and the live stream carries on after
    them. The stored series equals the exchange's, bar by bar."""
    truth = minute_bars(T0, 14)  # minutes 2-11 happen during the outage

    def prepare(ws: GeminiWsDouble) -> None:
        def connecting(n: int) -> None:
            serve_rest(rest, truth[:2] if n == 0 else truth[:12])
            if n == 0:
                ws.refuse = 3  # the next three handshakes: the outage

        ws.on_connect = connecting
        ws.script(send(SNAPSHOT), send(candles("BTCUSD", truth[1], truth[0])), DROP)
        ws.script(send(SNAPSHOT), send(candles("BTCUSD", truth[13], truth[12])))

    def done(worker: StreamWorker) -> bool:
        return len(stored(engine)) == 14 and worker.status.connected

    worker, ws = scenario(
        settings,
        engine,
        rest,
        prepare,
        done,
        overrides={"stream_report_seconds": 0.05},
    )
    assert stored(engine) == expected(truth)
    assert (ws.connections, ws.refused) == (2, 3)
    assert worker.status.reconnects == 4  # the drop, then three refusals
    first, second = sessions(engine)
    assert (first[2], second[2]) == ("closed", "stopped")
    with engine.connect() as conn:
        report = stream_report(conn, int(time.time() * 1000))
    assert report is not None and report.reconnects == 4
    assert "503" in (report.last_error or "")  # the refusals, the last error seen


def test_the_backoff_stays_at_its_cap_however_long_the_outage(
    settings: Settings, engine: Engine
) -> None:
    """Hours offline are thousands of failures in a row: the wait stays capped (it once
    overflowed at 1,025 and the worker died)."""
    worker = StreamWorker(settings.model_copy(update={"stream_max_backoff_seconds": 60}), engine)
    try:
        waits = [worker._backoff(failures, "offline") for failures in (1, 7, 1_025, 10**6)]
    finally:
        worker.client.close()
    assert 0.5 <= waits[0] <= 1.0
    assert all(30 <= wait <= 60 for wait in waits[1:])


def test_two_tickers_of_one_millisecond_are_two_rows_the_newest_last() -> None:
    """Tickers are unique per (pair, observed_at ms): the second write of a millisecond
    used to be a duplicate, dropped, and the newest price lost."""
    pair = PairState("BTCUSD", "btcusd", 1)
    pair.last_trade = Trade("BTCUSD", 1, 1_000, 100.0, 1.0)
    pair.changed_ms = 5_000
    first = _ticker(pair)
    pair.last_trade = Trade("BTCUSD", 2, 1_000, 101.0, 1.0)
    pair.changed_ms = 5_000  # the same millisecond
    second = _ticker(pair)
    assert first is not None and second is not None
    assert (first.observed_at, second.observed_at) == (5_000, 5_001)
    assert second.last == 101.0


def test_messages_are_read_while_a_slow_write_is_under_way(
    settings: Settings, engine: Engine, rest: GeminiDouble
) -> None:
    """A write that takes 0.6 s must not hold the messages behind it: they are handled as
    they come (every 20 ms), and the write's rows still land."""
    serve_rest(rest, [])
    handled: list[float] = []
    trades = [trade("BTCUSD", 10 + i, T0 + 5_000 + i, f"{101 + i / 100:.2f}") for i in range(60)]

    def prepare(ws: GeminiWsDouble) -> None:
        ws.script(send(SNAPSHOT), *(step for t in trades for step in (send(t), pause(0.02))))

    def slow_store(worker: StreamWorker) -> None:
        write = worker.store.write

        def slow(*args: Any, **kwargs: Any) -> None:
            time.sleep(0.6)
            write(*args, **kwargs)

        worker.store.write = slow  # type: ignore[method-assign]
        worker.on_update = lambda _: handled.append(time.monotonic())

    def done(worker: StreamWorker) -> bool:
        return worker.status.messages >= 61

    scenario(
        settings,
        engine,
        rest,
        prepare,
        done,
        overrides={"stream_batch_seconds": 0.1},
        configure=slow_store,
    )
    gaps = [later - first for first, later in zip(handled, handled[1:], strict=False)]
    assert len(handled) >= 60 and max(gaps) < 0.3  # never the 0.6 s of a write
    lasts = [r[0] for r in rows(engine, "SELECT last FROM ticker ORDER BY observed_at")]
    assert lasts[-1] == 101.59  # everything written by the end
