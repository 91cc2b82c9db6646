"""Security headers on every answer, errors never cached nor echoing the path, and a
caller's mistake on a cached route is not a traceback in the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.helpers import KEY, api_settings, limited_client, problem

MARKER = "path-marker-7f3a"


def _assert_headers(answer: httpx.Response) -> None:
    where = f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}"
    assert answer.headers.get("X-Content-Type-Options") == "nosniff", where
    if answer.status_code >= 400:
        assert answer.headers.get_list("Cache-Control") == ["no-store"], where


def test_every_answer_carries_the_security_headers(api_database: str) -> None:
    settings = {
        "cache_ttl_seconds": 5,
        "rate_limit_probes": "3/minute",
        "rate_limit_default": "99/minute",
    }
    with limited_client(api_database, **settings) as client:
        answers = [
            client.get("/api/crypto/latest"),
            client.get("/api/crypto/latest"),  # from the hot cache
            client.get("/api/crypto/runs"),
            client.get("/health/live"),
            client.get("/health/ready"),
            client.get("/api/crypto/runs", headers={"X-API-Key": "wrong"}),  # 401
            client.get(f"/api/crypto/{MARKER}"),  # 404, unknown route
            client.get("/api/crypto/latest", params={"symbols": "NOPE"}),  # 404, cached route
            client.post("/api/crypto/runs"),  # 405
            client.get("/api/crypto/runs", params={"limit": 0}),  # 422
            client.get("/api/crypto/runs", headers={"Host": "evil.example"}),  # 400
            client.get("/health/live"),
            client.get("/health/live"),  # 429
        ]
    assert [a.status_code for a in answers] == [
        200,
        200,
        200,
        200,
        200,
        401,
        404,
        404,
        405,
        422,
        400,
        200,
        429,
    ]
    for answer in answers:
        _assert_headers(answer)


def test_an_unexpected_error_carries_them_too(tmp_path: Path) -> None:
    """A 500 is sent by Starlette's outermost layer, outside the app's middleware."""
    settings = api_settings(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables: every read fails
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        answer = client.get("/api/crypto/runs", headers={"X-API-Key": KEY})
    assert problem(answer)["code"] == "internal_error"
    _assert_headers(answer)


def test_a_404_does_not_echo_the_path(client: TestClient) -> None:
    answer = client.get(f"/{MARKER}/<script>")
    assert problem(answer)["detail"] == "no such route"
    assert MARKER not in answer.text


def test_a_callers_mistake_on_a_cached_route_logs_no_traceback(
    api_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(api_settings(api_database, cache_ttl_seconds=5))) as client:
        client.headers["X-API-Key"] = KEY
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="api"):
            for path in ("/api/crypto/latest", "/api/crypto/candles/NOPE"):
                assert client.get(path, params={"symbols": "NOPE"}).status_code == 404
    cache_lines = [r for r in caplog.records if r.name == "api.cache"]
    assert len(cache_lines) <= 2  # one line per answer at most
    assert all(r.exc_info is None and r.levelno < logging.WARNING for r in cache_lines)


@pytest.mark.parametrize(
    "path", ["/api/crypto/latest", "/api/crypto/symbols", "/api/crypto/candles/btc?limit=2"]
)
def test_a_cacheable_keyed_answer_varies_on_the_key(client: TestClient, path: str) -> None:
    """A browser may keep it for max-age: the same URL with another key must not hit it."""
    answer = client.get(path)
    assert answer.status_code == 200
    assert "private" in answer.headers["cache-control"]
    assert "x-api-key" in answer.headers["vary"].lower()
