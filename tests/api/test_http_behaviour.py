"""Errors, validation, request ids, conditional GET, trusted hosts, production guards."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import create_engine

from api.main import create_app
from api.settings import get_api_settings
from tests.api.helpers import api_settings, problem


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/crypto/candles/bitcoin", {"interval": "2h"}, 422, "validation_error"),
        ("/api/crypto/candles/bitcoin", {"limit": 0}, 422, "validation_error"),
        ("/api/crypto/candles/bitcoin", {"limit": 5001}, 422, "validation_error"),
        ("/api/crypto/candles/bitcoin", {"start": "yesterday"}, 422, "validation_error"),
        ("/api/crypto/candles/bitcoin", {"start": "2021-13-45"}, 400, "invalid_time"),
        (
            "/api/crypto/candles/bitcoin",
            {"start": "2021-02-01", "end": "2021-01-01"},
            400,
            "invalid_range",
        ),
        ("/api/crypto/candles/bitcoin", {"source": "nosuch"}, 404, "no_series"),
        ("/api/crypto/candles/bitcoin", {"cursor": "%%%"}, 422, "validation_error"),
        ("/api/crypto/symbol/bit$coin", {}, 422, "validation_error"),
        ("/api/crypto/symbol/" + "x" * 40, {}, 422, "validation_error"),
        ("/api/crypto/latest", {"symbols": "btc,,eth"}, 422, "validation_error"),
        ("/api/crypto/latest", {"symbols": "btc,nosuchcoin"}, 404, "unknown_asset"),
        ("/api/crypto/runs", {"limit": 501}, 422, "validation_error"),
        ("/no/such/route", {}, 404, "not_found"),
    ],
)
def test_bad_input_is_a_4xx_problem(
    client: TestClient, path: str, params: dict[str, str | int], status: int, code: str
) -> None:
    answer = client.get(path, params=params)
    assert answer.status_code == status, answer.text
    assert problem(answer)["code"] == code


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    answer = client.post("/api/crypto/latest")
    assert answer.status_code == 405 and problem(answer)["code"] == "method_not_allowed"


def test_request_ids_are_echoed_when_sane_and_replaced_when_not(client: TestClient) -> None:
    sane = client.get("/health/live", headers={"X-Request-ID": "abc-123.DEF_9"})
    assert sane.headers["X-Request-ID"] == "abc-123.DEF_9"
    evil = client.get("/health/live", headers={"X-Request-ID": "x" * 65})
    assert evil.headers["X-Request-ID"] != "x" * 65 and len(evil.headers["X-Request-ID"]) == 32
    failed = client.get("/api/crypto/symbol/nope", headers={"X-Request-ID": "trace-1"})
    assert failed.headers["X-Request-ID"] == "trace-1" and failed.json()["request_id"] == "trace-1"


def test_conditional_get_answers_304_for_an_unchanged_body(client: TestClient) -> None:
    first = client.get("/api/crypto/metrics")
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, max-age=60"
    again = client.get("/api/crypto/metrics", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    other = client.get("/api/crypto/metrics", headers={"If-None-Match": 'W/"other"'})
    assert other.status_code == 200


def test_untrusted_host_is_refused(client: TestClient) -> None:
    # any path but the two probes, which answer the kubelet's `Host: <pod IP>`
    answer = client.get("/health", headers={"Host": "evil.example.com"})
    assert answer.status_code == 400 and problem(answer)["code"] == "invalid_host"


def test_unexpected_failure_is_a_500_without_internals(
    api_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(api_settings(api_database))
    with TestClient(app, raise_server_exceptions=False) as client:
        state = app.state.api
        state.start(create_engine("sqlite:////nonexistent/dir/broken.db"), state.gemini)
        with caplog.at_level(logging.ERROR, logger="api.errors"):
            answer = client.get(
                "/api/crypto/runs",
                headers={"X-API-Key": "test-key-0123456789abcdef", "X-Request-ID": "req-500"},
            )
    body = problem(answer)
    assert answer.status_code == 500 and body["code"] == "internal_error"
    assert "sqlite" not in answer.text.lower() and "Traceback" not in answer.text
    assert answer.headers["X-Request-ID"] == "req-500"
    record = next(r for r in caplog.records if r.name == "api.errors")
    assert record.request_id == "req-500" and record.exc_info is not None  # type: ignore[attr-defined]


def test_docs_and_schema_are_served_unless_disabled(api_database: str) -> None:
    with TestClient(create_app(api_settings(api_database))) as client:
        schema = client.get("/openapi.json").json()
        assert "/api/crypto/candles/{symbol}" in schema["paths"]
        assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    with TestClient(create_app(api_settings(api_database, docs_enabled=False))) as client:
        assert client.get("/openapi.json").status_code == 404


def test_production_refuses_placeholder_keys() -> None:
    with pytest.raises(ValidationError, match="placeholder or short API key"):
        get_api_settings(environment="production", api_key="change-me", _env_file=None)
    good = get_api_settings(
        environment="production", api_key="k" * 32, cursor_secret="c" * 32, _env_file=None
    )
    assert good.docs is False  # docs are off by default in production


def test_metrics_can_be_made_public(api_database: str) -> None:
    with TestClient(create_app(api_settings(api_database, metrics_public=True))) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/crypto/runs").status_code == 401  # only /metrics opened
    with TestClient(create_app(api_settings(api_database))) as client:
        assert client.get("/metrics").status_code == 401


def test_cors_is_off_by_default_and_configurable(api_database: str) -> None:
    preflight = {"Origin": "https://dash.example.com", "Access-Control-Request-Method": "GET"}
    with TestClient(create_app(api_settings(api_database))) as client:
        answer = client.options("/api/crypto/latest", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers
    settings = api_settings(api_database, cors_origins="https://dash.example.com")
    with TestClient(create_app(settings)) as client:
        answer = client.options("/api/crypto/latest", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "https://dash.example.com"
