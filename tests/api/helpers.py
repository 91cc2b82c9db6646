"""What API tests share: the keys, app settings for a test database, problem checks."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from httpx import Response

from api.main import create_app
from api.settings import ApiSettings, get_api_settings

KEY = "test-key-0123456789abcdef"
OTHER_KEY = "rotated-key-abcdef0123456789"


def api_settings(database_url: str, **overrides: object) -> ApiSettings:
    values: dict[str, object] = {
        "database_url": database_url,
        "api_keys": f"{KEY},{OTHER_KEY}",
        "allowed_hosts": "testserver,localhost",
        "gemini_base_url": "http://127.0.0.1:9",
        "gemini_retries": 1,
        "rate_limit_default": "10000/minute",
        "rate_limit_candles": "10000/minute",
        "rate_limit_probes": "10000/minute",
        "cache_ttl_seconds": 0,
        "log_level": "WARNING",
        "_env_file": None,
    }
    values.update(overrides)
    return get_api_settings(**values)


def problem(response: object) -> dict[str, object]:
    assert isinstance(response, Response)
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body: dict[str, object] = response.json()
    assert {"type", "title", "status", "detail", "code", "request_id"} <= body.keys()
    assert body["status"] == response.status_code
    return body


def limited_client(database: str, **overrides: object) -> TestClient:
    """A keyed client of an app with low limits, counted under a prefix of its own."""
    values: dict[str, object] = {
        "rate_limit_default": "3/minute",
        "rate_limit_candles": "2/minute",
        "rate_limit_probes": "2/minute",
        "rate_limit_key_prefix": f"t{uuid.uuid4().hex[:8]}",
    }
    settings = api_settings(database, **{**values, **overrides})
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    client.headers["X-API-Key"] = KEY
    return client
