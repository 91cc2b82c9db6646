"""Commands as users and platforms run them: real processes on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the virtualenv's scripts: uvicorn, alembic, python
# Settings a developer's shell or CI may carry that would change what the command does.
SCRUBBED = {
    "DATABASE_URL",
    "API_KEY",
    "API_KEYS",
    "ALLOWED_HOSTS",
    "ENVIRONMENT",
    "CURSOR_SECRET",
    "RATE_LIMIT_STORAGE_URI",
    "REDIS_URL",
    "PORT",
    "API_HOST",
    "API_PORT",
    "API_WORKERS",
    "KAGGLE_DATA_PATH",
    "COIN_IDS",
    "DOCS_ENABLED",
    "TRUSTED_PROXIES",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def command_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith("PYTEST_")}
    env |= {"PYTHONPATH": ".", "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    env["GEMINI_BASE_URL"] = "http://127.0.0.1:9"  # never the internet
    return env | values


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"no answer from {url} in {timeout}s:\n{log.read_text()}")


@contextmanager
def serving(command: list[str] | str, env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """Start `command` (a shell line when a string, as Heroku runs Procfile entries) in its
    own process group, wait until it answers, yield its base URL, then stop the group
    (uvicorn's reloader and workers are children)."""
    argv = ["bash", "-c", command] if isinstance(command, str) else command
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/health/live", process, log)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def launched_api(database_url: str, log: Path, **environment: str) -> Iterator[str]:
    """`python -m api.serve` as the containers run it, on a free port, with `environment`
    over the test defaults; yields its base URL, and fails on a traceback in its log."""
    port = free_port()
    defaults = {"LOG_LEVEL": "WARNING", "RATE_LIMIT_KEY_PREFIX": f"t{uuid.uuid4().hex[:8]}"}
    env = command_env(
        DATABASE_URL=database_url,
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        **{**defaults, **environment},
    )
    with serving([sys.executable, "-m", "api.serve"], env, port, log) as base:
        yield base
    text = log.read_text()
    assert "Traceback" not in text, text
