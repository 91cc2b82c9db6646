"""Who may open /api/crypto/stream: the key header, or a short-lived stream token (for
browsers' EventSource, which cannot send headers) that works on the stream route only.
A real server: the stream never ends, and the TestClient cannot follow it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.routes.stream import issue_token
from tests.api.helpers import KEY, api_settings, problem
from tests.api.sse_client import opened
from tests.processes import launched_api

SECRET = "s" * 40  # CURSOR_SECRET: the tokens' signing key
FINGERPRINT = hashlib.sha256(KEY.encode()).hexdigest()[:12]


@pytest.fixture(scope="module")
def server(api_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("stream-auth") / "api.log"
    environment = {
        "API_KEY": KEY,
        "CURSOR_SECRET": SECRET,
        "STREAM_REDIS_URL": "",
        "STREAM_MAX_PER_KEY": "1",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    with launched_api(api_database, Path(log), **environment) as base:
        yield base


def _refused(base: str, query: str, code: str) -> None:
    answer = httpx.get(f"{base}/api/crypto/stream{query}", timeout=5)
    assert answer.status_code == 401 and problem(answer)["code"] == code, answer.text


def test_a_token_from_the_token_route_opens_a_stream_without_the_header(server: str) -> None:
    answer = httpx.post(f"{server}/api/crypto/stream/token", headers={"X-API-Key": KEY})
    assert answer.status_code == 200
    body = answer.json()
    assert body["expires_in"] == 60
    with opened(server, f"?symbols=BTC&token={body['token']}", headers={}) as stream:
        assert stream.response.status_code == 200
        # The token carries the key: it counts against that key's limit (1 here).
        again = httpx.get(f"{server}/api/crypto/stream", headers={"X-API-Key": KEY}, timeout=5)
        assert again.status_code == 429


def test_the_token_route_itself_needs_the_key(server: str) -> None:
    answer = httpx.post(f"{server}/api/crypto/stream/token", timeout=5)
    assert answer.status_code == 401 and problem(answer)["code"] == "missing_api_key"


def test_the_stream_refuses_a_caller_with_neither_key_nor_token(server: str) -> None:
    _refused(server, "", "missing_api_key")
    answer = httpx.get(f"{server}/api/crypto/stream", headers={"X-API-Key": "wrong"}, timeout=5)
    assert answer.status_code == 401 and problem(answer)["code"] == "invalid_api_key"


def test_expired_wrong_scope_and_tampered_tokens_are_refused(server: str) -> None:
    now = int(time.time())
    expired = issue_token(SECRET.encode(), FINGERPRINT, now - 1)
    _refused(server, f"?token={expired}", "expired_token")
    cursor_scoped = issue_token(SECRET.encode(), FINGERPRINT, now + 60, scope="cursor")
    _refused(server, f"?token={cursor_scoped}", "invalid_token")
    other_secret = issue_token(b"x" * 40, FINGERPRINT, now + 60)
    _refused(server, f"?token={other_secret}", "invalid_token")
    valid = issue_token(SECRET.encode(), FINGERPRINT, now + 60)
    data, mac = valid.split(".")
    longer = issue_token(SECRET.encode(), FINGERPRINT, now + 3600).split(".")[0]
    _refused(server, f"?token={longer}.{mac}", "invalid_token")  # payload swapped
    _refused(server, f"?token={data}.{mac[:-2]}AA", "invalid_token")  # signature altered
    _refused(server, "?token=garbage", "invalid_token")


def test_a_token_is_not_accepted_on_other_routes(server: str) -> None:
    token = issue_token(SECRET.encode(), FINGERPRINT, int(time.time()) + 60)
    answer = httpx.get(f"{server}/api/crypto/latest?token={token}", timeout=5)
    assert answer.status_code == 401 and problem(answer)["code"] == "missing_api_key"


def test_a_browser_on_an_allowed_origin_may_ask_for_a_token(api_database: str) -> None:
    app = create_app(api_settings(api_database, cors_origins="https://app.example"))
    with TestClient(app) as client:
        preflight = client.options(
            "/api/crypto/stream/token",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key",
            },
        )
    assert preflight.status_code == 200
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
