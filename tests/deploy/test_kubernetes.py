"""Every manifest in k8s/ against the real Kubernetes schemas (kubernetes-validate ships
them, so this runs offline), strict: an unknown or misspelt field is an error, as
`kubectl apply --validate=strict` would say. And the API's probes as the kubelet sends them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings, get_api_settings
from etl.db.engine import create_db_engine, migrate

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "k8s").glob("*.yaml"))
# An older release (managed clusters lag behind upstream) and the newest the package knows.
VERSIONS = ["1.30", kubernetes_validate.latest_version()]
POD_IP = "10.244.1.7"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def schema_errors(doc: dict[str, Any], version: str) -> list[str]:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}"]
    return []


def api_container() -> dict[str, Any]:
    docs = [doc for path in MANIFESTS for doc in documents(path)]
    api = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "crypto-api"
    )
    container: dict[str, Any] = api["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_matches_the_kubernetes_schema(version: str) -> None:
    assert MANIFESTS
    errors = [
        e for path in MANIFESTS for doc in documents(path) for e in schema_errors(doc, version)
    ]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeoutSecond", 3), ("httpGet", {"path": "/health/live", "port": [8000]})],
    ids=["misspelt-field", "port-as-list"],
)
def test_the_schema_check_catches_a_broken_probe(field: str, value: object) -> None:
    """The check above can fail: the same manifest with one probe broken does."""
    doc = next(d for d in documents(MANIFESTS[0]) if d["kind"] == "Deployment")
    broken = copy.deepcopy(doc)
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"][field] = value
    assert schema_errors(doc, VERSIONS[-1]) == []
    assert schema_errors(broken, VERSIONS[-1])


def kubelet_host(probe: dict[str, Any]) -> str:
    """The Host a kubelet sends: the probe's own `Host` header, else `<pod IP>:<port>`."""
    headers = {h["name"].lower(): h["value"] for h in probe["httpGet"].get("httpHeaders", [])}
    return str(headers.get("host", f"{POD_IP}:{probe['httpGet']['port']}"))


def test_probes_pass_with_the_host_header_the_kubelet_sends(tmp_path: Path) -> None:
    """The API as the manifest configures it (its ConfigMap), asked as the kubelet asks."""
    config = next(d for path in MANIFESTS for d in documents(path) if d["kind"] == "ConfigMap")
    values: dict[str, Any] = {
        k.lower(): v for k, v in config["data"].items() if k.lower() in ApiSettings.model_fields
    }
    values |= {
        "database_url": f"sqlite:///{tmp_path / 'probe.db'}",
        "api_keys": "k" * 40,
        "cursor_secret": "c" * 40,
        "rate_limit_storage_uri": "memory://",
        "stream_redis_url": "",  # the manifest's Redis host is not here: follow the database
    }
    settings = get_api_settings(_env_file=None, **values)
    engine = create_db_engine(settings)
    migrate(engine)
    engine.dispose()
    container = api_container()
    with TestClient(create_app(settings)) as client:
        for name, body in (
            ("livenessProbe", {"status": "ok"}),
            ("readinessProbe", {"status": "ready"}),
        ):
            probe = container[name]
            answer = client.get(probe["httpGet"]["path"], headers={"Host": kubelet_host(probe)})
            assert (answer.status_code, answer.json()) == (200, body), (name, answer.text)
