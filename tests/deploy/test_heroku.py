"""Heroku, the seed's simplest deployment: Procfile, app.json and the runtime pin checked as
data, then the Procfile's own commands run as Heroku runs them (bash, `$PORT`, a
`postgres://` DATABASE_URL from the add-on) against a fresh PostgreSQL database."""

from __future__ import annotations

import importlib.util
import json
import re
import secrets
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.settings import ApiSettings, get_api_settings
from tests.databases import REDIS_URL, postgres_database, require_redis
from tests.processes import ROOT, command_env, free_port, serving

SETTING_NAMES = {name.upper() for name in ApiSettings.model_fields}
APP_HOST = "crypto-demo.herokuapp.com"


def procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_-]+):\s*(.+)", line.strip())
        assert match, f"not a Procfile entry: {line!r}"
        entries[match[1]] = match[2]
    return entries


def app_json() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "app.json").read_text())
    return loaded


def app_env() -> dict[str, str]:
    """app.json's env as Heroku fills it: values as given, generators as random secrets."""
    filled = {}
    for name, spec in app_json()["env"].items():
        filled[name] = secrets.token_hex(32) if spec.get("generator") == "secret" else spec["value"]
    return filled


def test_procfile_serves_web_on_port_and_migrates_on_release() -> None:
    entries = procfile()
    assert set(entries) == {"web", "release", "stream"}
    assert entries["release"] == "alembic upgrade head"
    web = entries["web"]
    assert web.endswith("python -m api.serve") and "API_PORT=$PORT" in web
    assert importlib.util.find_spec("api.serve") is not None
    assert set(re.findall(r"\b([A-Z_]+)=", web)) <= SETTING_NAMES


def expanded(line: str, command: str, variable: str, env: dict[str, str]) -> str:
    """`variable` as the Procfile line's own assignments set it for `command`, in bash."""
    assert line.endswith(command)
    probe = line.removesuffix(command) + f"printenv {variable}"
    done = subprocess.run(  # noqa: S603 - our own Procfile line, bash as Heroku runs it
        ["bash", "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


@pytest.mark.parametrize(
    "config",
    [
        {"REDIS_URL": "redis://h:6379"},  # the add-on alone
        {
            "REDIS_URL": "rediss://h:6380",
            "RATE_LIMIT_STORAGE_URI": "rediss://h:6380?ssl_cert_reqs=none",
        },
        {"REDIS_URL": "redis://h:6379", "STREAM_REDIS_URL": "redis://other:6379/2"},
        {"REDIS_URL": "redis://h:6379", "STREAM_REDIS_URL": ""},  # both follow the database
        {},  # no add-on: the web follows the database, the worker publishes nowhere
    ],
    ids=["addon", "tls-override", "own-url", "explicitly-none", "no-redis"],
)
def test_the_stream_dyno_publishes_where_the_web_dynos_hub_listens(
    config: dict[str, str],
) -> None:
    entries = procfile()
    assert importlib.util.find_spec("etl.stream.__main__") is not None
    env = {"PATH": "/usr/bin:/bin", **config}
    published = expanded(entries["stream"], "python -m etl.stream", "STREAM_REDIS_URL", env)
    web: dict[str, Any] = {
        "rate_limit_storage_uri": expanded(
            entries["web"], "python -m api.serve", "RATE_LIMIT_STORAGE_URI", env
        )
    }
    if "STREAM_REDIS_URL" in config:
        web["stream_redis_url"] = config["STREAM_REDIS_URL"]
    hub = ApiSettings.model_construct(**web).stream_redis()  # the web's own rule
    assert published == (hub or "")


def test_app_json_provisions_postgres_redis_and_production_secrets() -> None:
    manifest = app_json()
    assert {a["plan"] for a in manifest["addons"]} == {"heroku-postgresql", "heroku-redis"}
    env = manifest["env"]
    assert set(env) <= SETTING_NAMES
    assert env["ENVIRONMENT"]["value"] == "production"
    assert env["API_KEY"]["generator"] == env["CURSOR_SECRET"]["generator"] == "secret"
    assert env["ALLOWED_HOSTS"]["required"] is True
    assert set(manifest["formation"]) <= set(procfile())
    assert manifest["scripts"]["postdeploy"].startswith("python -m etl.pipeline")
    # what Heroku would set passes the production checks (no placeholder key, docs off)
    settings = get_api_settings(**{k.lower(): v for k, v in app_env().items()}, _env_file=None)
    assert settings.key_digests() and settings.docs is False


def test_runtime_pin_matches_the_supported_python() -> None:
    pin = (ROOT / ".python-version").read_text().strip()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert re.fullmatch(r"3\.\d+", pin)
    assert project["project"]["requires-python"] == f">={pin}"
    assert project["tool"]["mypy"]["python_version"] == pin


@pytest.fixture
def heroku_database() -> Iterator[str]:
    """A fresh database, named as the add-on hands it over: `postgres://...`."""
    with postgres_database("heroku") as url:
        yield url.set(drivername="postgres").render_as_string(hide_password=False)


def test_procfile_commands_run_locally_with_port_set(heroku_database: str, tmp_path: Path) -> None:
    require_redis()
    entries, port = procfile(), free_port()
    values = app_env() | {"ALLOWED_HOSTS": APP_HOST}
    env = command_env(
        **values,
        DATABASE_URL=heroku_database,
        REDIS_URL=REDIS_URL,
        PORT=str(port),
        API_HOST="127.0.0.1",  # the dyno's 0.0.0.0, kept on loopback here
        RATE_LIMIT_KEY_PREFIX=f"heroku-{uuid.uuid4().hex[:8]}",
    )
    for phase in ("release", "postdeploy"):
        line = entries["release"] if phase == "release" else app_json()["scripts"]["postdeploy"]
        done = subprocess.run(
            ["bash", "-c", line],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"{phase}: {done.stdout}\n{done.stderr}"
    key = {"X-API-Key": values["API_KEY"]}
    with serving(entries["web"], env, port, tmp_path / "web.log") as base:
        ready = httpx.get(f"{base}/health/ready")  # Heroku's router or a probe: any Host
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        health = httpx.get(f"{base}/health", headers={**key, "Host": APP_HOST})
        assert health.status_code == 200, health.text
        assert health.json()["rate_limits"] == {
            "configured": "redis",
            "in_use": "redis",
            "degraded": False,
        }
        latest = httpx.get(f"{base}/api/crypto/latest", headers={**key, "Host": APP_HOST})
        assert {row["symbol"] for row in latest.json()["data"]} >= {"BTCUSD", "ETHUSD"}
        assert httpx.get(f"{base}/health", headers=key).status_code == 400  # Host not listed
