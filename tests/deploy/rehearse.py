"""The operator's `docker compose up`, rehearsed without a container engine.

Each service of docker-compose.yml is started as a local process group with its OWN
command (compose `command:` or the image's `CMD`) and its OWN environment (the image's
`ENV`, then compose `environment:` interpolated from an operator's `.env`). PostgreSQL
and Redis are the local servers; `prefect-server` is a real `prefect server start`.
Gemini (REST and the market data WebSocket) is a pair of local doubles whose URLs the
operator's `.env` gives the stream service (`GEMINI_BASE_URL`, `GEMINI_WS_URL`).

The mappings a container engine would do, done here explicitly:
- each service gets a fake root `<tmp>/<service>`: the image's `COPY` sources are copied
  to `<root><destination>`, the working directory is `<root><WORKDIR>`, a bind mount
  `./x:/app/x` is a copy, and an environment value under WORKDIR (KAGGLE_DATA_PATH) is
  prefixed with the root. Only what the Dockerfile copies is there (no `.env`, no tests);
- `python`, `alembic` and `prefect` on PATH run this interpreter (the image's install);
- `service:port` in URLs becomes the local address (`postgres:5432` -> PostgreSQL here,
  `redis:6379/0` -> a free Redis database, `prefect-server:4200` -> a free port), and
  the `.env` names its own `STREAM_REDIS_CHANNEL` (pub/sub ignores database numbers);
- a service listening on 0.0.0.0 listens on 127.0.0.1 and a free port instead;
- a service's healthcheck is compose's, else the image's; `disable: true` means none.
Not rehearsed (needs an engine): image builds, named volumes, the Docker network and DNS,
users and file permissions inside the images, the postgres/redis images themselves,
`read_only`/`tmpfs`/`cap_drop`/`security_opt` and `restart` policies.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
import yaml

from api.settings import ApiSettings
from tests import gemini_double
from tests.databases import REDIS_URL, postgres_database
from tests.deploy import compose_env
from tests.gemini_double import GeminiDouble
from tests.gemini_ws_double import GeminiWsDouble, Step

ROOT = Path(__file__).resolve().parents[2]
TOOLS = {"python": None, "alembic": "alembic", "prefect": "prefect"}  # name -> `-m` module
T = TypeVar("T")
SUBSTITUTED = ("postgres", "redis")  # the local servers stand in for these images
IGNORED = shutil.ignore_patterns("__pycache__")


class RehearsalError(AssertionError):
    """A service did not come up as the operator would need it; the message says why."""


@dataclass
class Service:
    name: str
    root: Path
    workdir: Path
    command: list[str]
    env: dict[str, str]
    log: Path
    healthcheck: list[str]
    process: subprocess.Popen[bytes] | None = None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Stage:
    """Where the rehearsal runs: the operator's .env, local addresses, started services."""

    tmp: Path
    dotenv: dict[str, str]
    addresses: dict[str, str]
    redis_db: int
    ports: dict[str, int]
    services: dict[str, Service] = field(default_factory=dict)
    compose: dict[str, Any] = field(default_factory=dict)

    def fail(self, service: str, reason: str) -> RehearsalError:
        tail = self.services[service].log_tail() if service in self.services else ""
        return RehearsalError(f"{service}: {reason}\n--- {service} log ---\n{tail}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def operator_dotenv(postgres_user: str, database: str) -> dict[str, str]:
    """The `.env` an operator writes from .env.example (fresh random secrets)."""
    return {
        "POSTGRES_USER": postgres_user,
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        "POSTGRES_DB": database,
        "API_KEYS": secrets.token_urlsafe(32),
        "CURSOR_SECRET": secrets.token_urlsafe(32),
        "PREFECT_AUTH_STRING": f"operator:{secrets.token_urlsafe(16)}",
        # No scheduled run during the rehearsal: only the run it triggers.
        "ETL_SCHEDULE_CRON": "0 0 1 1 *",
    }


def load_compose(dotenv: Mapping[str, str]) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    resolved: dict[str, Any] = compose_env.resolve(raw, dotenv)
    return resolved


def _shims(directory: Path) -> Path:
    directory.mkdir(parents=True)
    for name, module in TOOLS.items():
        run = f'"{sys.executable}"' + (f" -m {module}" if module else "")
        (directory / name).write_text(f'#!/bin/sh\nexec {run} "$@"\n')
        (directory / name).chmod(0o755)
    return directory


def _install(root: Path, service: Mapping[str, Any], image: compose_env.Image) -> Path:
    """The image's COPY lines and the service's bind mounts, into the fake root."""
    workdir = root / image.workdir.lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)
    context = ROOT / service.get("build", {}).get("context", ".")
    mounts = [v.split(":") for v in service.get("volumes") or [] if str(v).startswith(".")]
    for source, destination in image.copies + [(m[0], m[1]) for m in mounts]:
        inside = Path(image.workdir, destination)  # an absolute destination wins
        target = root / str(inside).lstrip("/")
        origin = (context / source).resolve()
        if origin.is_dir():
            shutil.copytree(origin, target, dirs_exist_ok=True, ignore=IGNORED)
            continue
        if destination.endswith(("/", ".")):
            target = target / origin.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(origin, target)
    return workdir


def _listen_locally(
    name: str, spec: Mapping[str, Any], env: dict[str, str], command: list[str], stage: Stage
) -> None:
    """A container listens on 0.0.0.0:<its port>; here 127.0.0.1:<free port>. Its port
    must be the one compose publishes, or the operator's port mapping goes nowhere."""
    command[:] = [arg.replace("0.0.0.0", "127.0.0.1") for arg in command]  # noqa: S104
    what = command[2] if command[:2] == ["sh", "-c"] else " ".join(command)
    published = [port for _, port in compose_env.published_ports(spec)]
    if "api.serve" in what:
        listens, key = env.get("API_PORT", "8000"), "API_PORT"
        env["API_HOST"] = "127.0.0.1"
    elif "prefect server start" in what and "--port" not in command:
        listens, key = env.get("PREFECT_SERVER_API_PORT", "4200"), "PREFECT_SERVER_API_PORT"
    else:
        return
    if int(listens) not in published:
        raise RehearsalError(f"{name}: listens on {listens}, compose publishes {published}")
    env[key] = str(stage.ports[name])


def prepare(stage: Stage, compose: Mapping[str, Any], name: str) -> Service:
    """A service's command, environment and files, mapped as the module docstring says."""
    spec = compose["services"][name]
    build = spec.get("build")
    image = compose_env.image(ROOT / build["dockerfile"]) if build else compose_env.Image()
    root = stage.tmp / name
    workdir = _install(root, spec, image)
    env = {"PATH": f"{_shims(root / 'bin')}:/usr/bin:/bin", "HOME": str(root), "LANG": "C.UTF-8"}
    env |= image.env | compose_env.environment(spec)
    for key, value in env.items():
        value = compose_env.rewrite_addresses(value, stage.addresses)
        value = re.sub(r"(redis://[^/]+)/\d+", rf"\1/{stage.redis_db}", value)
        if image.workdir != "/" and value.startswith(image.workdir):
            value = str(root) + value
        env[key] = value
    command = list(spec.get("command") or image.cmd)
    if not command:
        raise RehearsalError(f"{name}: neither compose `command:` nor the image's CMD")
    _listen_locally(name, spec, env, command, stage)
    local = {address.rsplit(":", 1)[0] for address in stage.addresses.values()}
    strays = foreign_hosts(env, local | {"127.0.0.1", "localhost"})
    if strays:
        raise RehearsalError(f"{name}: URLs point at hosts no service provides: {strays}")
    own = spec.get("healthcheck", {})
    test = list(own.get("test") or ["CMD", *image.healthcheck])
    check = ["sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
    if own.get("disable") or test == ["NONE"]:
        check = []
    return Service(name, root, workdir, command, env, stage.tmp / f"{name}.log", check)


def foreign_hosts(env: Mapping[str, str], local: set[str]) -> dict[str, str]:
    """Variables whose URL host is not local after the rewrite (a typo'd service name).
    https and wss URLs are the outside world's (Gemini), not a compose service's."""
    out = {}
    for key, value in env.items():
        if re.match(r"^[a-z][a-z0-9+]*://", value) and not value.startswith(("https://", "wss://")):
            host = urlsplit(value).hostname
            if host is not None and host not in local:
                out[key] = value
    return out


def start(stage: Stage, service: Service) -> Service:
    with service.log.open("ab") as log:
        service.process = subprocess.Popen(  # noqa: S603 - the compose file's own command
            service.command,
            cwd=service.workdir,
            env=service.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stage.services[service.name] = service
    return service


def stop(service: Service) -> None:
    """End the whole process group (uvicorn workers, Prefect's flow-run subprocesses)."""
    process = service.process
    if process is None or process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def wait_for(
    stage: Stage, name: str, what: str, probe: Callable[[], T | None], timeout: float
) -> T:
    """Poll `probe` until it returns a value; fail early when the service exited."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        process = stage.services[name].process if name in stage.services else None
        if process is not None and process.poll() is not None:
            raise stage.fail(name, f"exited with {process.returncode} before {what}")
        try:
            result = probe()
        except Exception as exc:  # noqa: BLE001 - not up yet: keep polling, report the last
            last, result = exc, None
        if result is not None:
            return result
        time.sleep(0.5)
    raise stage.fail(name, f"no {what} after {timeout:.0f} s (last error: {last!r})")


def healthy(stage: Stage, service: Service) -> bool | None:
    """The service's own healthcheck (compose's, else the image's), in its environment;
    its `127.0.0.1:<container port>` is where the service listens here."""
    if not service.healthcheck:
        return True
    own = stage.ports.get(service.name)
    argv = [
        re.sub(r"(127\.0\.0\.1|localhost):\d+", f"127.0.0.1:{own}", arg) if own else arg
        for arg in service.healthcheck
    ]
    done = subprocess.run(  # noqa: S603 - the compose file's own healthcheck
        argv, cwd=service.workdir, env=service.env, capture_output=True, timeout=10, check=False
    )
    return True if done.returncode == 0 else None


def up(stage: Stage, compose: Mapping[str, Any], timeout: float) -> None:
    """`docker compose up`: each service once its dependencies are healthy."""
    services = compose["services"]
    if mismatch := stream_mismatch(compose):
        raise RehearsalError(f"stream: publishes where the api does not listen: {mismatch}")
    for name in compose_env.up_order(services, set(SUBSTITUTED)):
        service = start(stage, prepare(stage, compose, name))
        wait_for(stage, name, "healthy", partial(healthy, stage, service), timeout)


def stream_mismatch(compose: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Where the stream service publishes against where the api's SSE hub listens (by the
    hub's own rule, `ApiSettings.stream_redis`), for each that differs: a hub on another
    Redis or channel, or following the database, never sees the worker's live updates."""
    services = compose["services"]
    if not {"stream", "api"} <= services.keys():
        return {}
    read = {"stream_redis_url", "stream_redis_channel", "rate_limit_storage_uri"}

    def settings(name: str) -> ApiSettings:
        env = compose_env.environment(services[name])
        given: dict[str, Any] = {k.lower(): v for k, v in env.items() if k.lower() in read}
        return ApiSettings.model_construct(**given)  # unvalidated: these three fields only

    stream, api = settings("stream"), settings("api")
    pairs = {
        "STREAM_REDIS_URL": (stream.stream_redis_url or "", api.stream_redis() or ""),
        "STREAM_REDIS_CHANNEL": (stream.stream_redis_channel, api.stream_redis_channel),
    }
    return {key: pair for key, pair in pairs.items() if pair[0] != pair[1]}


def _empty_redis_db(host: str, port: int) -> int:
    for number in range(15, 0, -1):
        if not redis.Redis(host=host, port=port, db=number).dbsize():
            return number
    raise RehearsalError("no empty Redis database (1-15) for the rehearsal")


@contextmanager
def local_backends(tmp: Path) -> Iterator[Stage]:
    """A fresh PostgreSQL database and an empty Redis database, removed afterwards."""
    rd = urlsplit(REDIS_URL)
    redis_db = _empty_redis_db(rd.hostname or "127.0.0.1", rd.port or 6379)
    ports = {"prefect-server": free_port(), "api": free_port()}
    with postgres_database("rehearse") as pg:
        addresses = {
            "postgres:5432": f"{pg.host}:{pg.port or 5432}",
            "redis:6379": f"{rd.hostname}:{rd.port or 6379}",
            "prefect-server:4200": f"127.0.0.1:{ports['prefect-server']}",
            "api:8000": f"127.0.0.1:{ports['api']}",
        }
        dotenv = operator_dotenv(pg.username or "postgres", pg.database or "")
        dotenv["STREAM_REDIS_CHANNEL"] = f"crypto:rehearsal-{secrets.token_hex(4)}"
        stage = Stage(tmp, dotenv, addresses, redis_db, ports)
        try:
            yield stage
        finally:
            for service in reversed(list(stage.services.values())):
                stop(service)
            redis.Redis(
                host=rd.hostname or "127.0.0.1", port=rd.port or 6379, db=redis_db
            ).flushdb()


@contextmanager
def gemini_doubles(*scripts: list[Step]) -> Iterator[tuple[str, str]]:
    """Gemini's REST API and market data WebSocket as local servers: (REST URL, WebSocket
    URL). Each WebSocket connection plays the next of `scripts`; the WebSocket double runs
    on its own thread's event loop, as a server elsewhere would."""
    rest = gemini_double.start(GeminiDouble(now_ms=int(time.time() * 1000)))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="gemini-ws-double", daemon=True)
    thread.start()
    ws = GeminiWsDouble()
    for script in scripts:
        ws.script(*script)
    try:
        asyncio.run_coroutine_threadsafe(ws.start(), loop).result(timeout=10)
        yield rest.url, ws.url
    finally:
        asyncio.run_coroutine_threadsafe(ws.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()
        gemini_double.stop(rest)
