"""`X-API-Key` checks: the wrong-key limit before any comparison, a length cap, bytes."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.types import ASGIApp

from api.settings import get_api_settings
from tests.api.helpers import KEY, limited_client, problem

NON_ASCII_KEY = "clé-de-test-ß-0123456789abcdef"


def test_past_the_wrong_key_limit_even_the_right_key_gets_429(api_database: str) -> None:
    """Otherwise a guesser keeps guessing at full speed and spots the right guess: it is the
    only answer that is not a 429."""
    settings = {"rate_limit_auth_failures": "2/minute", "trusted_proxies": "testclient"}
    with limited_client(api_database, **settings) as client:
        guesser = {"X-Forwarded-For": "203.0.113.9"}
        codes = [
            client.get("/api/crypto/runs", headers={**guesser, "X-API-Key": f"guess-{i}"})
            for i in range(3)
        ]
        right = client.get("/api/crypto/runs", headers={**guesser, "X-API-Key": KEY})
        elsewhere = client.get("/api/crypto/runs", headers={"X-Forwarded-For": "203.0.113.10"})
    assert [c.status_code for c in codes] == [401, 401, 429]
    assert right.status_code == 429 and problem(right)["code"] == "too_many_auth_failures"
    assert 0 < int(right.headers["Retry-After"]) <= 60
    assert elsewhere.status_code == 200  # only the guessing address is blocked


def test_a_key_header_over_256_bytes_is_a_401_and_counts_as_a_wrong_key(
    api_database: str,
) -> None:
    with limited_client(api_database, rate_limit_auth_failures="2/minute") as client:
        long_keys = [KEY + "x" * 233, "k" * 100_000]  # 257 bytes; 100 KB
        answers = [client.get("/api/crypto/runs", headers={"X-API-Key": k}) for k in long_keys]
        third = client.get("/api/crypto/runs", headers={"X-API-Key": "k" * 300})
    assert [problem(a)["code"] for a in answers] == ["invalid_api_key", "invalid_api_key"]
    assert third.status_code == 429


def test_settings_refuse_a_key_no_client_could_send() -> None:
    with pytest.raises(ValueError, match="at most 256 bytes"):
        get_api_settings(api_keys="k" * 257, _env_file=None)
    with pytest.raises(ValueError, match="at most 256 bytes"):
        get_api_settings(api_key="é" * 129, _env_file=None)  # 258 bytes in UTF-8
    assert get_api_settings(api_key="k" * 256, _env_file=None).key_digests()


async def _raw_get(app: ASGIApp, path: str, key: bytes) -> httpx.Response:
    """A request whose header bytes reach the app as sent (the TestClient re-encodes header
    values as UTF-8 text)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(path, headers=[(b"X-API-Key", key)])


def test_non_ascii_keys_are_compared_as_the_bytes_sent(api_database: str) -> None:
    with limited_client(api_database, api_keys=f"{KEY},{NON_ASCII_KEY}") as client:
        app = client.app
        utf8 = asyncio.run(_raw_get(app, "/api/crypto/runs", NON_ASCII_KEY.encode()))
        latin1 = asyncio.run(_raw_get(app, "/api/crypto/runs", NON_ASCII_KEY.encode("latin-1")))
        garbage = asyncio.run(_raw_get(app, "/api/crypto/runs", b"\xff\xfe\x80key"))
    assert utf8.status_code == 200, utf8.text
    assert problem(latin1)["code"] == "invalid_api_key"  # other bytes, another key
    assert problem(garbage)["code"] == "invalid_api_key"
