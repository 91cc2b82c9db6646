"""`/api/crypto/gemini/symbols` against the Gemini double: a request never queues long
for the client's pacer."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from etl.extract.gemini_client import API_PACER_WAIT_SECONDS, reset_breakers
from tests.api.helpers import KEY, api_settings, problem
from tests.gemini_double import GeminiDouble, start, stop


@pytest.fixture
def double() -> Iterator[GeminiDouble]:
    fake = start(GeminiDouble(now_ms=int(time.time() * 1000)))
    reset_breakers()
    yield fake
    stop(fake)
    reset_breakers()


def test_an_exhausted_pacer_is_a_quick_503_with_retry_after(
    api_database: str, double: GeminiDouble
) -> None:
    # 2 requests a minute in bursts of 1: after one request the next slot is 30 s away
    settings = api_settings(
        api_database,
        gemini_base_url=double.url,
        gemini_requests_per_minute=2,
        gemini_burst=1,
        gemini_symbols_ttl_seconds=0,
    )
    double.fail("/v1/symbols", "503")  # the one request allowed fails: nothing is cached
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers["X-API-Key"] = KEY
        first = client.get("/api/crypto/gemini/symbols")
        assert first.status_code == 503
        started = time.monotonic()
        second = client.get("/api/crypto/gemini/symbols")
        waited = time.monotonic() - started
    assert second.status_code == 503 and second.headers["Retry-After"] == "60"
    assert problem(second)["code"] == "gemini_unavailable"
    assert waited < API_PACER_WAIT_SECONDS + 2, waited  # not the 30 s to the next slot
    assert double.count("/v1/symbols") == 1  # the pacer held: nothing more was sent
