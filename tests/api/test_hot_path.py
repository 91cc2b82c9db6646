"""The hot path (api/hot_path.py) against the routes it stands in for: the same bytes,
headers included, for every hot route; the same counters, log lines and refusals; and
everything it must not answer left to FastAPI."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from api.hot_path import Bounded, HotPath
from api.main import create_app
from api.state import AppState
from tests.api.helpers import KEY, OTHER_KEY, api_settings, problem
from tests.processes import launched_api

HOT = [
    "/api/crypto/latest",
    "/api/crypto/latest?symbols=bitcoin,ETH&source=csv",
    "/api/crypto/metrics?symbols=BTC",
    "/api/crypto/symbols",
    "/api/crypto/candles/bitcoin?interval=1w&limit=50",
    "/api/crypto/candles/btc-usd?interval=1d&start=2021-01-01&end=2021-03-01",
]
FIXED = {"X-Request-ID": "same-id-for-both", "Accept-Encoding": "identity"}
CHANGING = {b"date", b"x-ratelimit-remaining", b"x-ratelimit-reset"}


def cached_client(database: str, **overrides: object) -> TestClient:
    values: dict[str, object] = {"cache_ttl_seconds": 60, "cache_stale_seconds": 0}
    settings = api_settings(database, **{**values, **overrides})
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    client.headers["X-API-Key"] = KEY
    return client


@pytest.fixture
def hot_client(api_database: str) -> Iterator[TestClient]:
    with cached_client(api_database) as client:
        yield client


def served_fast(client: TestClient, route: str) -> float:
    """The app's own count of hot-path answers for the route (as /metrics shows it)."""
    registry = state_of_app(client).registry
    return registry.get_sample_value("http_hot_path_total", {"route": route}) or 0.0


def state_of_app(client: TestClient) -> AppState:
    state: AppState = client.app.state.api  # type: ignore[attr-defined]
    return state


def stable(response: Response) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in response.headers.raw if k.lower() not in CHANGING]


@pytest.mark.parametrize("path", HOT)
def test_the_fast_path_sends_the_routes_own_bytes(hot_client: TestClient, path: str) -> None:
    template = path.split("?")[0]
    template = "/api/crypto/candles/{symbol}" if "/candles/" in template else template
    before = served_fast(hot_client, template)
    by_route = hot_client.get(path, headers=FIXED)  # validated and rendered by FastAPI
    assert served_fast(hot_client, template) == before
    by_fast_path = hot_client.get(path, headers=FIXED)
    assert served_fast(hot_client, template) == before + 1
    assert by_route.status_code == by_fast_path.status_code == 200
    assert by_fast_path.content == by_route.content
    assert stable(by_fast_path) == stable(by_route)
    # the limit headers are there, one request further on
    remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in (by_route, by_fast_path)]
    assert remaining[1] == remaining[0] - 1
    # compressed for a client that accepts gzip, as the route would (bodies over 1 KB)
    gzip = {**FIXED, "Accept-Encoding": "gzip"}
    by_route_gz = hot_client.get(path + ("&" if "?" in path else "?") + "x=1", headers=gzip)
    fast_gz = hot_client.get(path + ("&" if "?" in path else "?") + "x=1", headers=gzip)
    assert fast_gz.content == by_route_gz.content == by_route.content  # decoded
    assert stable(fast_gz) == stable(by_route_gz)


def test_a_matching_etag_is_a_304_from_the_fast_path(hot_client: TestClient) -> None:
    first = hot_client.get("/api/crypto/latest")
    etag = first.headers["ETag"]
    before = served_fast(hot_client, "/api/crypto/latest")
    again = hot_client.get("/api/crypto/latest", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag
    assert served_fast(hot_client, "/api/crypto/latest") == before + 1


def test_keys_limits_and_hosts_stay_the_routes_business(api_database: str) -> None:
    with cached_client(api_database, rate_limit_default="3/minute") as client:
        answers = [client.get("/api/crypto/symbols") for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
        refused = client.get("/api/crypto/symbols")  # the fast path counts, the route refuses
        assert refused.status_code == 429 and problem(refused)["code"] == "rate_limited"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert int(refused.headers["Retry-After"]) > 0
        # a wrong or missing key never gets the cached bytes
        wrong = client.get("/api/crypto/symbols", headers={"X-API-Key": "wrong"})
        assert wrong.status_code == 401 and problem(wrong)["code"] == "invalid_api_key"
        missing = client.get("/api/crypto/symbols", headers={"X-API-Key": ""})
        assert missing.status_code == 401
        # another key has its own counter, and its own answer from the cache
        other = client.get("/api/crypto/symbols", headers={"X-API-Key": OTHER_KEY})
        assert other.status_code == 200
        # a Host the app does not serve is the app's 400, even for a remembered request
        bad_host = client.get("/api/crypto/symbols", headers={"Host": "evil.example"})
        assert bad_host.status_code == 400 and problem(bad_host)["code"] == "invalid_host"


def test_a_blocked_address_gets_no_cached_answer(api_database: str) -> None:
    with cached_client(api_database, rate_limit_auth_failures="2/minute") as client:
        assert client.get("/api/crypto/latest").status_code == 200  # remembered, cached
        for _ in range(3):
            client.get("/api/crypto/latest", headers={"X-API-Key": "guess"})
        blocked = client.get("/api/crypto/latest")  # the right key, from a blocked address
        assert blocked.status_code == 429
        assert problem(blocked)["code"] == "too_many_auth_failures"


def test_cross_origin_requests_get_the_cors_headers(api_database: str) -> None:
    with cached_client(api_database, cors_origins="https://app.example") as client:
        client.get("/api/crypto/metrics")
        answer = client.get("/api/crypto/metrics", headers={"Origin": "https://app.example"})
        assert answer.headers["access-control-allow-origin"] == "https://app.example"
        assert served_fast(client, "/api/crypto/metrics") == 0


def test_fast_answers_are_logged_like_the_routes(
    hot_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    hot_client.get("/api/crypto/metrics")
    with caplog.at_level(logging.INFO, logger="api.access"):
        hot_client.get("/api/crypto/metrics", headers={"X-Request-ID": "log-me"})
    [line] = [r for r in caplog.records if r.name == "api.access"]
    assert line.__dict__["route"] == "/api/crypto/metrics"
    assert line.__dict__["status"] == 200
    assert line.__dict__["path"] == "/api/crypto/metrics"
    assert len(line.__dict__["key"]) == 12
    assert line.__dict__["request_id"] == "log-me"
    assert served_fast(hot_client, "/api/crypto/metrics") == 1


def test_an_invalid_request_is_never_remembered(hot_client: TestClient) -> None:
    for _ in range(2):
        answer = hot_client.get("/api/crypto/candles/bitcoin?limit=0")
        assert answer.status_code == 422
    for _ in range(2):
        unknown = hot_client.get("/api/crypto/candles/nosuchcoin")
        assert unknown.status_code == 404
    assert served_fast(hot_client, "/api/crypto/candles/{symbol}") == 0


@pytest.mark.parametrize("api_database", ["sqlite"], indirect=True)
def test_the_served_access_log_has_one_json_line_per_request(
    api_database: str, tmp_path: Path
) -> None:
    """As deployed (`python -m api.serve`, INFO): the access lines written around the
    logging module carry the same fields, in the same order, as logging's own lines, the
    hot path's too, with a secret in the path masked."""
    log = tmp_path / "api.log"
    environment = {"LOG_LEVEL": "INFO", "API_KEY": KEY, "CACHE_TTL_SECONDS": "60"}
    with launched_api(api_database, log, **environment) as base:
        keyed = {"X-API-Key": KEY}
        for request_id in ("first", "second", KEY):  # FastAPI's answer, then the hot path's
            answer = httpx.get(
                f"{base}/api/crypto/metrics", headers={**keyed, "X-Request-ID": request_id}
            )
            assert answer.status_code == 200
        assert httpx.get(f"{base}/api/crypto/symbol/{KEY}", headers=keyed).status_code == 404
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [
        line
        for line in lines
        if line["name"] == "api.access" and line["path"].startswith("/api/crypto/")
    ]
    other = next(line for line in lines if line["name"] != "api.access")
    assert [list(line)[:6] for line in access] == [list(other)[:6]] * 4
    assert [(a["request_id"], a["route"], a["status"]) for a in access[:2]] == [
        ("first", "/api/crypto/metrics", 200),
        ("second", "/api/crypto/metrics", 200),
    ]
    assert access[2]["request_id"] == "***"  # a key sent as a request id
    assert access[3]["path"] == "/api/crypto/symbol/***" and KEY not in log.read_text()
    assert access[1]["key"] == access[0]["key"] and len(access[0]["key"]) == 12
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", access[1]["timestamp"])


def hot_path_of(client: TestClient) -> HotPath:
    """The app's HotPath layer (built when the client started the app)."""
    layer = client.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(layer, HotPath):
        layer = layer.app
    return layer


def test_bounded_keeps_its_budget_and_forgets_the_oldest() -> None:
    sizes: Bounded[str, bytes] = Bounded(100, len)
    for name in "abcdef":
        sizes.put(name, b"x" * 30)
    assert list(sizes) == ["d", "e", "f"] and sizes.total == 90
    sizes.put("e", b"x" * 80)  # replacing counts the new size only
    assert list(sizes) == ["e"] and sizes.total == 80


def test_answers_kept_for_the_fast_path_stay_within_the_cache_budget(api_database: str) -> None:
    with cached_client(api_database, cache_max_mb=2) as client:
        for day in range(40):  # 40 distinct pages of ~60 KB (2.4 MB), each asked twice
            start = 1_514_764_800_000 + day * 86_400_000  # 2018-01-01 on, a day apart
            path = f"/api/crypto/candles/bitcoin?interval=1d&limit=300&start={start}"
            for _ in range(2):
                assert client.get(path, headers={"Accept-Encoding": "identity"}).status_code == 200
        built = hot_path_of(client)._built  # noqa: SLF001 - the bound under test
        assert 1 << 20 < built.total <= 2 << 20
        assert served_fast(client, "/api/crypto/candles/{symbol}") == 40


@pytest.mark.parametrize("path", ["/api/crypto/latest", "/api/crypto/runs"])
def test_two_host_lines_are_refused_whichever_comes_first(
    hot_client: TestClient, path: str
) -> None:
    assert hot_client.get(path).status_code == 200  # remembered, cached
    for hosts in (["testserver", "evil.example"], ["evil.example", "testserver"]):
        answer = hot_client.get(path, headers=[("Host", h) for h in hosts])
        assert answer.status_code == 400 and problem(answer)["code"] == "invalid_host"


def test_an_empty_key_is_a_missing_key_on_both_paths(api_database: str) -> None:
    empty_digest = "sha256:" + hashlib.sha256(b"").hexdigest()
    with cached_client(api_database, api_keys=f"{KEY},{empty_digest}") as client:
        assert client.get("/api/crypto/metrics").status_code == 200  # remembered, cached
        for _ in range(2):
            answer = client.get("/api/crypto/metrics", headers={"X-API-Key": ""})
            assert answer.status_code == 401 and problem(answer)["code"] == "missing_api_key"
