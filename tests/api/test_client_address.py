"""The client address behind per-address limits comes from `TRUSTED_PROXIES` only: a real
server started as `python -m api.serve` starts it, and raw header lists reach the app."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from api.settings import get_api_settings
from tests.api.helpers import KEY, limited_client
from tests.processes import launched_api

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("api_database", ["sqlite"], indirect=True)
def test_the_launched_server_ignores_forwarded_for_from_untrusted_peers(
    api_database: str, tmp_path: Path
) -> None:
    """uvicorn trusts X-Forwarded-For from FORWARDED_ALLOW_IPS (127.0.0.1 by default, `*`
    in many container setups); with no TRUSTED_PROXIES the header must change nothing."""
    log = tmp_path / "api.log"
    settings = {"API_KEY": KEY, "RATE_LIMIT_PROBES": "4/minute", "FORWARDED_ALLOW_IPS": "*"}
    with launched_api(api_database, log, **settings) as base:  # the start-up wait: one probe
        answers = [
            httpx.get(f"{base}/health/live", headers={"X-Forwarded-For": f"10.0.0.{i}"})
            for i in range(1, 5)
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]


@pytest.mark.parametrize("api_database", ["sqlite"], indirect=True)
def test_the_launched_server_reads_every_forwarded_for_line_behind_a_trusted_proxy(
    api_database: str, tmp_path: Path
) -> None:
    """A proxy that appends its own `X-Forwarded-For` line after the client's: the client's
    line is not the address, the proxy's is."""
    log = tmp_path / "api.log"
    settings = {"API_KEY": KEY, "RATE_LIMIT_PROBES": "3/minute", "TRUSTED_PROXIES": "127.0.0.1"}
    with launched_api(api_database, log, **settings) as base:
        answers = []
        for i in range(1, 5):
            headers = [("X-Forwarded-For", f"10.0.0.{i}"), ("X-Forwarded-For", "192.0.2.7")]
            answers.append(httpx.get(f"{base}/health/live", headers=headers).status_code)
        other = httpx.get(f"{base}/health/live", headers={"X-Forwarded-For": "192.0.2.8"})
    assert answers == [200, 200, 200, 429]  # all four are 192.0.2.7
    assert other.status_code == 200  # another client behind the same proxy


def test_the_app_joins_every_forwarded_for_line(api_database: str) -> None:
    """Raw header lists as an ASGI server hands them over: the client's own line first,
    then the one its proxy appended, then the trusted proxy's hop."""
    with limited_client(api_database, trusted_proxies="testclient,198.51.100.1") as client:
        answers = []
        for i in range(1, 4):
            headers = [
                ("X-Forwarded-For", f"10.0.0.{i}"),
                ("X-Forwarded-For", "203.0.113.5, 198.51.100.1"),
            ]
            answers.append(client.get("/health/live", headers=headers).status_code)
        other = client.get("/health/live", headers={"X-Forwarded-For": "203.0.113.6"})
    assert answers == [200, 200, 429]  # all three are 203.0.113.5 (probes: 2/minute)
    assert other.status_code == 200


@pytest.mark.parametrize("api_database", ["sqlite"], indirect=True)
def test_trusted_proxies_may_be_networks(api_database: str) -> None:
    """An ingress or a platform router changes address: `10.0.0.0/8` trusts every hop in it.
    Without that, every client behind it would share the router's address, and one key
    guesser would block them all."""
    proxies = "testclient,10.0.0.0/8,2001:db8::/32"
    settings = {"trusted_proxies": proxies, "rate_limit_auth_failures": "2/minute"}
    with limited_client(api_database, **settings) as client:
        guesses = [
            client.get(
                "/api/crypto/runs",
                headers={
                    "X-Forwarded-For": f"203.0.113.9, 10.1.2.{i}, 2001:db8::{i}",
                    "X-API-Key": "guess",
                },
            ).status_code
            for i in range(3)
        ]
        other = client.get(
            "/api/crypto/runs", headers={"X-Forwarded-For": "203.0.113.10, 10.9.9.9"}
        )
    assert guesses == [401, 401, 429]  # one guesser, seen through three router addresses
    assert other.status_code == 200  # another client behind the same routers


def test_a_trusted_proxy_network_must_parse() -> None:
    with pytest.raises(ValueError, match="not a network"):
        get_api_settings(trusted_proxies="10.0.0.0/33", _env_file=None)
