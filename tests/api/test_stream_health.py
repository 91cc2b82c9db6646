"""The stream worker's state on `/health` and `/metrics`, as the worker records it in its
run row (`etl.load.ledger.report_run`); the batch run stays `/health`'s `last_run`."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.main import create_app
from etl.load.ledger import finish_run, report_run, start_run
from tests.api.helpers import KEY, api_settings


@pytest.fixture
def client(api_database: str) -> Iterator[TestClient]:
    """Bars of 2021 count as fresh here: the status then depends on the stream alone."""
    settings = api_settings(api_database, stale_after_intervals=1e9)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        c.headers["X-API-Key"] = KEY
        yield c


def now_ms() -> int:
    return int(time.time() * 1000)


def report(**fields: Any) -> dict[str, Any]:
    at = now_ms()
    state = {
        "connected": True,
        "since_ms": at - 60_000,
        "last_message_ms": at - 2_000,
        "messages": 10,
        "bad_messages": 1,
        "reconnects": 2,
        "last_error": None,
        "reported_ms": at,
        "report_every_ms": 5_000,
    }
    return {"stream": state | fields}


def metric(text: str, name: str) -> float:
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(line.split()[-1])


def test_health_and_metrics_follow_the_stream_workers_reports(
    client: TestClient, engine_for: Engine
) -> None:
    before = client.get("/health").json()
    assert before["stream"] is None  # no worker ever ran on this database
    assert before["status"] == "ok"
    batch_run = before["last_run"]["id"]

    run_id = str(uuid.uuid4())
    start_run(engine_for, run_id=run_id, trigger="stream", now_ms=now_ms())
    report_run(engine_for, run_id=run_id, sources=report())
    health = client.get("/health").json()
    stream = health["stream"]
    assert health["last_run"]["id"] == batch_run  # the running stream run is no batch run
    assert (stream["state"], stream["connected"], stream["messages"]) == ("connected", True, 10)
    assert (stream["bad_messages"], stream["reconnects"], stream["last_error"]) == (1, 2, None)
    assert 1.0 <= stream["last_message_age_seconds"] < 30
    assert stream["since"] is not None and stream["report_age_seconds"] < 30
    assert health["status"] == "ok"
    exposition = client.get("/metrics").text
    assert metric(exposition, 'stream_state{state="connected"}') == 1.0
    assert metric(exposition, 'stream_state{state="unresponsive"}') == 0.0
    assert metric(exposition, "stream_connected") == 1.0
    assert metric(exposition, "stream_messages_total") == 10.0
    assert metric(exposition, "stream_reconnects_total") == 2.0
    assert 1.0 <= metric(exposition, "stream_last_message_age_seconds") < 30

    report_run(
        engine_for,
        run_id=run_id,
        sources=report(connected=False, last_error="connection closed: 1006"),
    )
    health = client.get("/health").json()
    assert (health["stream"]["state"], health["stream"]["since"]) == ("disconnected", None)
    assert health["stream"]["last_error"] == "connection closed: 1006"
    assert health["status"] == "degraded"

    report_run(engine_for, run_id=run_id, sources=report(reported_ms=now_ms() - 60_000))
    health = client.get("/health").json()
    assert (health["stream"]["state"], health["stream"]["connected"]) == ("unresponsive", False)
    assert health["stream"]["report_age_seconds"] >= 59
    assert metric(client.get("/metrics").text, 'stream_state{state="unresponsive"}') == 1.0

    finish_run(
        engine_for,
        run_id=run_id,
        status="success",
        sources=report(connected=False),
        error=None,
        now_ms=now_ms(),
    )
    report_run(engine_for, run_id=run_id, sources=report())  # too late: the run ended
    health = client.get("/health").json()
    assert (health["stream"]["state"], health["stream"]["connected"]) == ("stopped", False)
    assert health["status"] == "ok"  # stopped on purpose is no fault
