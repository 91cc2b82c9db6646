"""`python -m api.serve`: a random local key on first run (never a default one), the
server as deployed, and its connection settings."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from api.serve import NoDelayHttpProtocol, ensure_local_key, event_loop
from api.settings import get_api_settings
from tests.api.helpers import KEY
from tests.processes import launched_api

ROOT = Path(__file__).resolve().parents[2]


def test_first_run_writes_a_random_key_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("API_KEY", "API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    env = tmp_path / ".env"
    env.write_text("LOG_LEVEL=INFO")
    assert ensure_local_key(env) is True
    lines = env.read_text().splitlines()
    assert lines[0] == "LOG_LEVEL=INFO" and lines[1].startswith("API_KEY=")
    assert len(lines[1].removeprefix("API_KEY=")) >= 40
    assert oct(env.stat().st_mode & 0o777) == "0o600"
    assert ensure_local_key(env) is False  # a key is configured now: nothing changes
    assert env.read_text().count("API_KEY=") == 1


def test_serve_runs_the_app_with_its_settings_and_two_workers(
    api_database: str, tmp_path: Path
) -> None:
    """`python -m api.serve` as the containers run it: settings from the environment,
    two worker processes, a keyed route answering from the database."""
    log = tmp_path / "api.log"
    with (
        launched_api(api_database, log, API_KEY=KEY, API_WORKERS="2") as base,
        httpx.Client(base_url=base, headers={"X-API-Key": KEY}) as client,
    ):
        latest = client.get("/api/crypto/latest")
        assert latest.status_code == 200, latest.text
        assert {row["symbol"] for row in latest.json()["data"]} >= {"BTCUSD", "ETHUSD"}
        assert client.get("/api/crypto/latest", headers={"X-API-Key": "wrong"}).status_code == 401


async def _no_requests(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("the socket test sends no request")


@pytest.mark.parametrize(
    ("protocol", "nodelay"), [(NoDelayHttpProtocol, 1), (HttpToolsProtocol, 0)]
)
def test_connections_get_tcp_nodelay_on_a_plain_listening_socket(
    protocol: type[HttpToolsProtocol], nodelay: int
) -> None:
    """uvicorn's multi-worker listening socket is a plain stream socket (protocol 0), on
    which asyncio does not set TCP_NODELAY: our protocol sets it (the stock one shows the
    difference), so an answer's second write never waits for a delayed ACK."""
    config = Config(app=_no_requests)
    config.load()

    async def accepted_socket_option() -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # as uvicorn binds it
        listener.bind(("127.0.0.1", 0))
        seen: list[int] = []

        def factory() -> asyncio.Protocol:
            made = protocol(config=config, server_state=ServerState(), app_state={})
            original = made.connection_made

            def connection_made(transport: asyncio.BaseTransport) -> None:
                original(transport)  # type: ignore[arg-type]
                sock = transport.get_extra_info("socket")
                seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

            made.connection_made = connection_made  # type: ignore[method-assign]
            return made

        server = await asyncio.get_running_loop().create_server(factory, sock=listener)
        _, writer = await asyncio.open_connection(*listener.getsockname())
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        assert seen, "the server never made the connection"
        return seen[0]

    assert asyncio.run(accepted_socket_option()) == nodelay


@pytest.mark.parametrize(
    ("workers", "setting", "loop"),
    [
        (1, "auto", "asyncio"),
        (2, "auto", "uvloop"),
        (2, "asyncio", "asyncio"),
        (1, "uvloop", "uvloop"),
    ],
)
def test_the_event_loop_follows_the_worker_count_unless_set(
    workers: int, setting: str, loop: str
) -> None:
    settings = get_api_settings(api_workers=workers, api_event_loop=setting, _env_file=None)
    assert event_loop(settings) == loop
