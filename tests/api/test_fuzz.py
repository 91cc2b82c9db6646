"""Property-based fuzzing of the OpenAPI schema (schemathesis): for every operation and
generated input, no 5xx and every response conforms to its documented schema."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.main import create_app
from tests.api.helpers import KEY, api_settings
from tests.gemini_double import GeminiDouble, start, stop


@pytest.fixture
def api_schema(api_database: str) -> Iterator[object]:
    double = start(GeminiDouble(now_ms=int(time.time() * 1000)))  # Gemini answers here
    app = create_app(api_settings(api_database, gemini_base_url=double.url))
    try:
        with TestClient(app):  # runs the lifespan: engine and Gemini client in app.state
            yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        stop(double)


# The event stream is left out: each generated request holds an open stream until the
# client gives up (~5 s), 70 s of the suite per database for one route; its parameters and
# refusals have their own tests (tests/api/test_stream*.py).
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/api/crypto/stream")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_schema(case: Any) -> None:
    case.call_and_validate(
        headers={"X-API-Key": KEY, "Host": "testserver"},
        checks=[not_a_server_error, response_schema_conformance],
    )
