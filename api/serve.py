"""`python -m api.serve`: the one way the API is served (containers, `make run`, the bench).

    python -m api.serve            # API_HOST, API_PORT, API_WORKERS from the environment
    python -m api.serve --local    # make run: also generate a local key on first run

The event loop (`API_EVENT_LOOP=auto`) is asyncio for one worker (fair to new
connections when saturated) and uvloop for several (spreads connections across workers);
the measurements behind it are in docs/decisions.md.

With `--local` and no key configured (`API_KEY`/`API_KEYS` in the environment or `.env`),
a random key is written into `.env`; no default key ever ships. The key itself is not
printed: the hint shows how to read it from `.env`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.settings import ApiSettings, get_api_settings

ENV_FILE = Path(".env")


class NoDelayHttpProtocol(HttpToolsProtocol):
    """httptools with `TCP_NODELAY` on every connection: asyncio sets it only on sockets
    created as IPPROTO_TCP, and uvicorn's multi-worker socket is not one, so answers
    (two writes) waited for the client's delayed ACK (docs/decisions.md)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


# Every launcher goes through here, so these cannot drift apart (see the docstring).
SERVER_OPTIONS: dict[str, Any] = {
    "factory": True,
    "http": "api.serve:NoDelayHttpProtocol",
    "log_config": None,
    "access_log": False,  # api.middleware writes the JSON access log
    # uvicorn would replace the peer address with X-Forwarded-For whenever the peer is in
    # FORWARDED_ALLOW_IPS (127.0.0.1 by default): any local client could pick its address
    # and escape per-address limits. api.rate_limit.client_address applies TRUSTED_PROXIES.
    "proxy_headers": False,
}


def ensure_local_key(env_file: Path = ENV_FILE) -> bool:
    """Write a random `API_KEY` into `env_file` when no key is configured; True if so."""
    settings = get_api_settings()
    if settings.key_digests():
        return False
    existing = env_file.read_text() if env_file.exists() else ""
    separator = "" if not existing or existing.endswith("\n") else "\n"
    env_file.write_text(f"{existing}{separator}API_KEY={secrets.token_urlsafe(32)}\n")
    env_file.chmod(0o600)
    return True


def event_loop(settings: ApiSettings) -> str:
    if settings.api_event_loop != "auto":
        return settings.api_event_loop
    return "asyncio" if settings.api_workers == 1 else "uvloop"


def serve(settings: ApiSettings) -> None:
    uvicorn.run(
        "api.main:create_app",
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        loop=event_loop(settings),
        **SERVER_OPTIONS,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--local", action="store_true", help="generate a local key into .env")
    args = parser.parse_args(argv)
    if args.local and ensure_local_key():
        sys.stdout.write(f"Generated a random API key into {ENV_FILE.resolve()} (API_KEY).\n")
    settings = get_api_settings()
    if args.local:
        url = f"http://{settings.api_host}:{settings.api_port}"
        sys.stdout.write(
            f"\nServing the API on {url} (docs: {url}/docs)\n"
            f'Try:  curl -H "X-API-Key: $(grep ^API_KEY= .env | cut -d= -f2-)" '
            f"{url}/api/crypto/latest\n\n"
        )
        sys.stdout.flush()
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
