"""The operator's path, rehearsed: docker-compose.yml's services started as local processes
with their own commands and environments (see tests/deploy/rehearse.py for the mapping),
against local PostgreSQL and Redis and a real Prefect server; the stream service reaches
local Gemini doubles. `make rehearse` runs this file alone. A wrong command, a missing
variable or a wrong URL in the compose file or a Dockerfile fails here with the service's
log."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import create_engine, text

from etl.db.engine import current_revision, head_revision
from scheduler.schedule import DEPLOYMENT_NAME
from tests.api.sse_client import opened
from tests.databases import postgres_admin, require_redis
from tests.deploy import rehearse
from tests.deploy.rehearse import Stage
from tests.gemini_ws_double import Step, l2_snapshot, pause, send, trade

START_TIMEOUT = 90.0  # a first `prefect server start` migrates its SQLite: 20-40 s here
RUN_TIMEOUT = 90.0
SERVED_TIMEOUT = 45.0  # the API's cache: CACHE_TTL_SECONDS 5 + CACHE_STALE_SECONDS 30
STREAM_TIMEOUT = 30.0
TRADE_SECONDS = 0.5
TRADES_FOR = 900.0  # outlasts the module: a client that subscribes late still sees a trade


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    postgres_admin().dispose()  # skips (fails in CI) without PostgreSQL
    require_redis()
    script = live_trades()
    with (
        rehearse.gemini_doubles(script, script) as (rest_url, ws_url),
        rehearse.local_backends(tmp_path_factory.mktemp("rehearsal")) as stage,
    ):
        # How an operator points the stream service elsewhere: the .env, through compose.
        stage.dotenv |= {"GEMINI_BASE_URL": rest_url, "GEMINI_WS_URL": ws_url}
        stage.compose = rehearse.load_compose(stage.dotenv)
        rehearse.up(stage, stage.compose, START_TIMEOUT)
        yield stage


def live_trades() -> list[Step]:
    """Gemini's BTCUSD book, then a trade every TRADE_SECONDS (never stamped in the future)."""
    start = int(time.time() * 1000)
    steps = [send(l2_snapshot("BTCUSD", [("67250.00", "1")], [("67251.00", "1")]))]
    for i in range(int(TRADES_FOR / TRADE_SECONDS)):
        at = start + int(i * TRADE_SECONDS * 1000)
        steps += [send(trade("BTCUSD", i + 1, at, f"{67250 + i % 7}.50")), pause(TRADE_SECONDS)]
    return steps


def api(stage: Stage) -> httpx.Client:
    key = stage.dotenv["API_KEYS"].split(",")[0]
    return httpx.Client(
        base_url=f"http://127.0.0.1:{stage.ports['api']}", headers={"X-API-Key": key}, timeout=10
    )


def prefect(stage: Stage, *, authenticated: bool = True) -> httpx.Client:
    url = stage.services["etl-worker"].env["PREFECT_API_URL"]
    user, _, password = stage.dotenv["PREFECT_AUTH_STRING"].partition(":")
    auth = (user, password) if authenticated else None
    return httpx.Client(base_url=url.rstrip("/") + "/", auth=auth, timeout=10)


def deployments(stage: Stage) -> list[dict[str, Any]] | None:
    with prefect(stage) as client:
        body = {"deployments": {"name": {"any_": [DEPLOYMENT_NAME]}}}
        found: list[dict[str, Any]] = client.post("deployments/filter", json=body).json()
    return found or None


def test_migrations_ran_in_the_compose_database(stage: Stage) -> None:
    engine = create_engine(stage.services["api"].env["DATABASE_URL"])
    try:
        assert current_revision(engine) == head_revision() is not None
    finally:
        engine.dispose()
    assert stage.dotenv["POSTGRES_DB"] in stage.services["api"].env["DATABASE_URL"]


def test_api_is_ready_and_takes_only_the_compose_keys(stage: Stage) -> None:
    with api(stage) as client:
        assert client.get("/health/ready").json() == {"status": "ready"}
        assert client.get("/api/crypto/symbols", headers={"X-API-Key": "x" * 40}).status_code == 401
        assert client.get("/api/crypto/symbols").status_code == 200


def test_prefect_refuses_clients_without_the_auth_string(stage: Stage) -> None:
    with prefect(stage, authenticated=False) as client:
        assert client.post("deployments/filter", json={}).status_code == 401
        assert client.get("health").status_code == 200  # probes stay open
    with prefect(stage) as client:
        assert client.post("deployments/filter", json={}).status_code == 200


def test_the_worker_registers_its_deployment_with_the_prefect_server(stage: Stage) -> None:
    found = rehearse.wait_for(
        stage, "etl-worker", "deployment", lambda: deployments(stage), START_TIMEOUT
    )
    assert [d["name"] for d in found] == [DEPLOYMENT_NAME]
    assert found[0]["schedules"][0]["schedule"]["cron"] == stage.dotenv["ETL_SCHEDULE_CRON"]


def test_a_run_triggered_through_prefect_completes_and_the_api_serves_its_rows(
    stage: Stage,
) -> None:
    (deployment,) = rehearse.wait_for(
        stage, "etl-worker", "deployment", lambda: deployments(stage), START_TIMEOUT
    )
    # Gemini is not reachable from CI: the run loads the compose worker's data/raw only.
    with prefect(stage) as client:

        def created() -> dict[str, Any] | None:
            # Prefect's SQLite-backed server answers 503 while its database is busy (seen on
            # a loaded 2-core CI machine): ask again, as Prefect's own client does.
            answer = client.post(
                f"deployments/{deployment['id']}/create_flow_run",
                json={"parameters": {"params": {"live": False}}},
            )
            return answer.json() if answer.status_code == 201 else None

        run = rehearse.wait_for(stage, "prefect-server", "created flow run", created, 60)

        def finished() -> dict[str, Any] | None:
            state: dict[str, Any] = client.get(f"flow_runs/{run['id']}").json()["state"]
            return state if state["type"] in {"COMPLETED", "FAILED", "CRASHED"} else None

        state = rehearse.wait_for(stage, "etl-worker", "finished flow run", finished, RUN_TIMEOUT)
    assert state["type"] == "COMPLETED", state
    with api(stage) as client:
        ledger = client.get(f"/api/crypto/runs/{run['id']}").json()
        served = rehearse.wait_for(
            stage, "api", "rows of the run", lambda: served_rows(client), SERVED_TIMEOUT
        )
    assert ledger["status"] == "success" and ledger["trigger"] == "prefect", ledger
    assert ledger["sources"]["csv"]["inserted"] > 0, ledger
    assert {"BTCUSD", "ETHUSD", "SOLUSD", "ADAUSD"} <= served["symbols"]
    assert served["latest"] >= {"BTCUSD", "ETHUSD"}


def served_rows(client: httpx.Client) -> dict[str, set[str]] | None:
    """Symbols and latest prices, once the API's cache shows them (an answer cached before
    the run is served until CACHE_TTL_SECONDS + CACHE_STALE_SECONDS have passed)."""
    symbols = {s["symbol"] for s in client.get("/api/crypto/symbols").json()["data"]}
    latest = {row["symbol"] for row in client.get("/api/crypto/latest").json()["data"]}
    return {"symbols": symbols, "latest": latest} if symbols and latest else None


def scalar_of(stage: Stage, sql: str) -> Any:
    engine = create_engine(stage.services["stream"].env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def test_the_stream_worker_writes_its_session_and_live_tickers_to_the_compose_database(
    stage: Stage,
) -> None:
    env = stage.services["stream"].env
    assert env["DATABASE_URL"] == stage.services["api"].env["DATABASE_URL"]
    tickers = "SELECT count(*) FROM ticker WHERE source = 'gemini'"
    rehearse.wait_for(
        stage, "stream", "gemini tickers", lambda: scalar_of(stage, tickers) or None, STREAM_TIMEOUT
    )
    session = "SELECT url FROM stream_session WHERE ended_at IS NULL ORDER BY id DESC LIMIT 1"
    assert scalar_of(stage, session) == env["GEMINI_WS_URL"]  # the .env's, through compose
    last = "SELECT max(last) FROM ticker WHERE source = 'gemini'"
    assert 67250.5 <= scalar_of(stage, last) <= 67256.5


def test_every_api_worker_follows_the_stream_channel_and_serves_a_live_price(
    stage: Stage,
) -> None:
    env = stage.services["api"].env
    channel = env["STREAM_REDIS_CHANNEL"]
    assert channel == stage.dotenv["STREAM_REDIS_CHANNEL"]  # this rehearsal's own
    client = redis.Redis.from_url(env["STREAM_REDIS_URL"])
    try:

        def subscribers() -> int | None:
            counts = dict(client.pubsub_numsub(channel))  # type: ignore[arg-type]
            found = int(counts.get(channel.encode(), 0))
            return found if found >= int(env["API_WORKERS"]) else None

        assert rehearse.wait_for(stage, "api", "subscribers", subscribers, 10) == int(
            env["API_WORKERS"]
        )
    finally:
        client.close()
    base = f"http://127.0.0.1:{stage.ports['api']}"
    with opened(base, "?symbols=BTC", headers={"X-API-Key": stage.dotenv["API_KEYS"]}) as events:
        deadline = time.monotonic() + STREAM_TIMEOUT
        frame = events.next_event()
        while frame.event != "price" and time.monotonic() < deadline:
            frame = events.next_event()
    price = frame.json()
    assert frame.event == "price", frame
    assert (price["symbol"], price["source"]) == ("BTCUSD", "gemini")
    assert 67250.5 <= price["price"] <= 67256.5
    assert (price["bid"], price["ask"]) == (67250.0, 67251.0)  # the book's top at that trade


def test_sigterm_stops_the_stream_worker_cleanly(stage: Stage) -> None:
    """Last: what `docker compose stop stream` (or a pod's termination) sends."""
    process = stage.services["stream"].process
    assert process is not None and process.poll() is None
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=15) == 0, stage.services["stream"].log_tail()
    assert "Traceback" not in stage.services["stream"].log.read_text()
    session = "SELECT reconnect_reason FROM stream_session ORDER BY id DESC LIMIT 1"
    assert scalar_of(stage, session) == "stopped"
    open_sessions = "SELECT count(*) FROM stream_session WHERE ended_at IS NULL"
    assert scalar_of(stage, open_sessions) == 0
    run = "SELECT count(*) FROM etl_run WHERE trigger = 'stream' AND finished_at IS NULL"
    assert scalar_of(stage, run) == 0
