"""Kubernetes probes against a production ALLOWED_HOSTS: the kubelet sends
`Host: <pod IP>:<port>`, which no operator can list in advance."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from etl.extract.gemini_client import reset_breakers
from tests.api.helpers import KEY, api_settings, problem

PRODUCTION_HOSTS = "api.example.com,*.api.example.com"
KUBELET_HOSTS = ["10.1.2.3:8000", "10.1.2.3", "[fd00::17]:8000", "crypto-api-7d9f8b-x2k4p:8000"]


@pytest.fixture
def production_client(api_database: str) -> Iterator[TestClient]:
    reset_breakers()
    settings = api_settings(api_database, allowed_hosts=PRODUCTION_HOSTS)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers["X-API-Key"] = KEY
        yield client


@pytest.mark.parametrize("api_database", ["sqlite"], indirect=True)
@pytest.mark.parametrize("host", KUBELET_HOSTS)
def test_kubelet_probes_pass_with_the_pod_address_as_host(
    production_client: TestClient, host: str
) -> None:
    live = production_client.get("/health/live", headers={"Host": host})
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = production_client.get("/health/ready", headers={"Host": host})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


@pytest.mark.parametrize("api_database", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/health",
        "/health/",
        "/health/live/",
        "/health/readyz",
        "/health/live/x",
        "/api/crypto/latest",
        "/metrics",
        "/docs",
        "/openapi.json",
        "/nowhere",
    ],
)
def test_every_other_path_still_rejects_an_unlisted_host(
    production_client: TestClient, path: str
) -> None:
    answer = production_client.get(path, headers={"Host": "10.1.2.3:8000"})
    assert answer.status_code == 400
    assert problem(answer)["code"] == "invalid_host"


@pytest.mark.parametrize("api_database", ["sqlite"], indirect=True)
def test_listed_hosts_still_reach_keyed_routes(production_client: TestClient) -> None:
    for host in ("api.example.com", "eu.api.example.com:443"):
        answer = production_client.get("/health", headers={"Host": host})
        assert answer.status_code == 200, (host, answer.text)
        assert answer.json()["database"]["reachable"] is True
