"""The deployment files checked as data (no Docker engine runs here): compose services,
Dockerfiles, the Kubernetes manifest and .env.example against the settings and the app.
`hadolint` (PyPI) and `docker-compose config` (Debian) lint them too where installed;
in CI both are installed, so those checks fail rather than skip there."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute

from api.main import create_app
from api.settings import ApiSettings, get_api_settings

ROOT = Path(__file__).resolve().parents[2]
SETTING_NAMES = {name.upper() for name in ApiSettings.model_fields}
# Read by other programs than our settings: Prefect's client and server, and Compose.
FOREIGN = {
    "PREFECT_API_URL",
    "PREFECT_API_AUTH_STRING",
    "PREFECT_SERVER_API_AUTH_STRING",
    "PREFECT_AUTH_STRING",
}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def dockerfile(name: str) -> list[str]:
    text = (ROOT / name).read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def k8s() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "k8s" / "crypto-etl.yaml").read_text()) if d]


def test_compose_has_every_service_with_real_builds_and_healthchecks() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "prefect-server", "api", "etl-worker", "stream"}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        if "build" in service:
            assert (ROOT / service["build"]["dockerfile"]).exists(), name
        if "image" in service:
            assert re.search(r":\d", service["image"]), f"{name}: pin the image version"
    for name in ("postgres", "redis", "prefect-server"):
        assert services[name]["healthcheck"]["test"], name
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    assert services["postgres"]["volumes"][0].startswith("pgdata:")
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["etl-worker"]["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    assert "alembic upgrade head" in " ".join(services["api"]["command"])


def test_compose_environment_uses_only_real_settings_and_sets_the_required_ones() -> None:
    services = compose()["services"]
    for name in ("api", "etl-worker", "stream"):
        env = services[name]["environment"]
        unknown = set(env) - SETTING_NAMES - FOREIGN
        assert not unknown, f"{name} sets variables no setting reads: {unknown}"
        assert "@postgres:5432/" in env["DATABASE_URL"]
    assert services["api"]["environment"]["RATE_LIMIT_STORAGE_URI"].startswith("redis://redis:")
    assert "API_KEYS" in services["api"]["environment"]
    assert services["etl-worker"]["environment"]["PREFECT_API_URL"].startswith(
        "http://prefect-server:"
    )
    assert services["api"]["ports"] == ["8000:8000"]


def test_compose_runs_one_hardened_stream_worker_on_the_apis_redis_channel() -> None:
    services = compose()["services"]
    stream, api = services["stream"], services["api"]
    assert stream["build"] == services["etl-worker"]["build"]  # the ETL image
    assert stream["command"] == ["python", "-m", "etl.stream"]  # exec form: python gets SIGTERM
    importlib.import_module("etl.stream.__main__")
    for backend in ("postgres", "redis"):
        assert stream["depends_on"][backend]["condition"] == "service_healthy"
    env = stream["environment"]
    assert env["STREAM_REDIS_URL"] == api["environment"]["STREAM_REDIS_URL"]
    assert env["STREAM_REDIS_URL"].startswith("redis://redis:6379/")
    assert env["STREAM_REDIS_CHANNEL"] == api["environment"]["STREAM_REDIS_CHANNEL"]
    assert env["GEMINI_WS_URL"].endswith(":-wss://api.gemini.com/v2/marketdata}")
    assert "PREFECT_API_URL" not in env and "API_KEYS" not in env  # needs neither
    assert "ports" not in stream and "expose" not in stream
    assert stream["restart"] == "unless-stopped" and "deploy" not in stream  # no replicas
    # The image's HEALTHCHECK asks PREFECT_API_URL, which this service has not: disabled.
    checks = [line for line in dockerfile("Dockerfile.etl") if line.startswith("HEALTHCHECK")]
    assert "PREFECT_API_URL" in checks[-1]
    assert stream["healthcheck"] == {"disable": True}
    assert stream["read_only"] is True and stream["tmpfs"] == ["/tmp"]  # noqa: S108 - a tmpfs
    assert stream["cap_drop"] == ["ALL"]
    assert stream["security_opt"] == ["no-new-privileges:true"]
    assert "USER 10001" in dockerfile("Dockerfile.etl")  # the image's non-root user


@pytest.mark.parametrize(
    ("name", "module"), [("Dockerfile.api", "api.main"), ("Dockerfile.etl", "scheduler.serve")]
)
def test_dockerfiles_are_pinned_non_root_healthchecked_and_start_real_modules(
    name: str, module: str
) -> None:
    lines = dockerfile(name)
    bases = [line.split()[1] for line in lines if line.startswith("FROM")]
    assert len(bases) == 2 and all(re.search(r":\d+\.\d+\.\d+-slim", b) for b in bases)
    users = [line.split()[1] for line in lines if line.startswith("USER")]
    assert users and users[-1] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert not any(re.search(r"(API_KEY|PASSWORD|SECRET)=", line) for line in lines)
    cmd = next(line for line in lines if line.startswith("CMD"))
    assert module.split(".")[0] in cmd
    importlib.import_module(module)


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", "data", ".env"} <= ignored


def test_kubernetes_manifest_probes_real_routes_and_uses_real_settings() -> None:
    docs = k8s()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "crypto-api") in kinds and ("Service", "crypto-api") in kinds
    assert ("Deployment", "crypto-etl-worker") in kinds and (
        "ConfigMap",
        "crypto-etl-config",
    ) in kinds
    app = create_app(get_api_settings(_env_file=None))
    routes = {r.path for r in app.routes if isinstance(r, APIRoute)}
    api = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "crypto-api"
    )
    assert api["spec"]["replicas"] == 2
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] in routes
    assert container["readinessProbe"]["httpGet"]["path"] in routes
    assert container["ports"][0]["containerPort"] == container["livenessProbe"]["httpGet"]["port"]
    assert {"requests", "limits"} <= container["resources"].keys()
    secret = next(d for d in docs if d["kind"] == "Secret")
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert set(secret["stringData"]) <= SETTING_NAMES | FOREIGN
    assert set(config["data"]) <= SETTING_NAMES | FOREIGN
    assert config["data"]["RATE_LIMIT_STORAGE_URI"].startswith("redis://")
    assert config["data"]["STREAM_REDIS_URL"].startswith("redis://")
    names = {d["metadata"]["name"] for d in docs}
    for doc in docs:
        for ref in re.findall(r"'(?:configMapRef|secretRef)': \{'name': '([^']+)'", str(doc)):
            assert ref in names


def test_kubernetes_runs_exactly_one_hardened_stream_worker() -> None:
    docs = k8s()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    stream = deployments["crypto-stream"]["spec"]
    worker = deployments["crypto-etl-worker"]["spec"]
    # Two pods would write and publish every update twice, even briefly during a rollout.
    assert stream["replicas"] == 1 and stream["strategy"] == {"type": "Recreate"}
    pod = stream["template"]["spec"]
    assert pod["securityContext"] == worker["template"]["spec"]["securityContext"]
    [container] = pod["containers"]
    [worker_container] = worker["template"]["spec"]["containers"]
    assert container["image"] == worker_container["image"]  # the ETL image
    assert container["command"] == ["python", "-m", "etl.stream"]
    assert container["envFrom"] == worker_container["envFrom"]  # the same ConfigMap/Secret
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"requests", "limits"} <= container["resources"].keys()
    assert "ports" not in container
    assert not [d for d in docs if d["kind"] == "Service" and "stream" in d["metadata"]["name"]]


def test_env_example_documents_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert not documented - SETTING_NAMES - FOREIGN, documented - SETTING_NAMES - FOREIGN
    assert not SETTING_NAMES - documented, f"undocumented: {SETTING_NAMES - documented}"


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (CI installs it)")
        pytest.skip(f"{name} is not installed")
    return found


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run(
        [_tool("hadolint"), "Dockerfile.api", "Dockerfile.etl"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_docker_compose_accepts_the_file() -> None:
    env = {
        **os.environ,
        "POSTGRES_PASSWORD": "x",
        "API_KEYS": "y",
        "CURSOR_SECRET": "z",
        "PREFECT_AUTH_STRING": "admin:p",
    }
    done = subprocess.run(
        [_tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _pinned(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "-r")):
            names.add(re.split(r"[\[=<>]", line)[0].lower().replace("_", "-"))
    return names


def test_the_api_image_requirements_cover_every_import_of_api_and_etl() -> None:
    """Dockerfile.api installs requirements-api.txt only: every third-party module that
    api/ or etl/ imports must come from a distribution pinned there, and Prefect must not
    be needed (it is the ETL image's)."""
    imported = set()
    for source in [*(ROOT / "api").rglob("*.py"), *(ROOT / "etl").rglob("*.py")]:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    # ccxt is the ETL image's, like Prefect: only the venue sources import it, and the
    # pipeline loads them lazily, so the API image never needs it
    third_party = imported - set(sys.stdlib_module_names) - {"api", "etl", "__future__", "ccxt"}
    owners = importlib.metadata.packages_distributions()
    pinned = _pinned(ROOT / "requirements-api.txt")
    missing = {
        module
        for module in third_party
        if not {d.lower().replace("_", "-") for d in owners.get(module, [module])} & pinned
    }
    assert not missing, (
        f"imported by api/ or etl/ but not pinned in requirements-api.txt: {missing}"
    )
    etl_image = _pinned(ROOT / "requirements.txt")
    assert "prefect" not in pinned and "prefect" in etl_image
    assert "ccxt" not in pinned and "ccxt" in etl_image
    code = (
        "import sys; sys.modules['prefect'] = sys.modules['ccxt'] = None; "
        "import api.main, api.serve, etl.pipeline"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
