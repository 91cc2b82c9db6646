"""docker-compose.yml as data: what it publishes and how Prefect is closed; and the
rehearsal's reading of it (interpolation, images, addresses), including the mistakes it
must catch before an operator does (wrong command, missing variable, wrong URL)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.databases import postgres_admin
from tests.deploy import compose_env, rehearse
from tests.deploy.compose_env import MissingVariableError, interpolate

DOTENV = rehearse.operator_dotenv("postgres", "crypto")


def test_only_the_api_is_published_beyond_this_host() -> None:
    services = rehearse.load_compose(DOTENV)["services"]
    published = {
        (name, interface, port)
        for name, service in services.items()
        for interface, port in compose_env.published_ports(service)
    }
    assert ("prefect-server", "127.0.0.1", 4200) in published
    assert {(n, p) for n, i, p in published if i != "127.0.0.1"} == {("api", 8000)}


def test_prefect_server_and_its_clients_share_the_auth_string_from_dotenv() -> None:
    services = rehearse.load_compose(DOTENV)["services"]
    server = compose_env.environment(services["prefect-server"])
    assert server["PREFECT_SERVER_API_AUTH_STRING"] == DOTENV["PREFECT_AUTH_STRING"]
    clients = [n for n, s in services.items() if "PREFECT_API_URL" in compose_env.environment(s)]
    assert clients == ["etl-worker"]
    for name in clients:
        env = compose_env.environment(services[name])
        assert env["PREFECT_API_AUTH_STRING"] == DOTENV["PREFECT_AUTH_STRING"], name
        assert "PREFECT_API_KEY" not in env  # it would take precedence and fail with 401


@pytest.mark.parametrize(
    "missing", ["PREFECT_AUTH_STRING", "API_KEYS", "CURSOR_SECRET", "POSTGRES_PASSWORD"]
)
def test_a_secret_missing_from_dotenv_stops_compose_with_its_name(missing: str) -> None:
    dotenv = {k: v for k, v in DOTENV.items() if k != missing}
    with pytest.raises(MissingVariableError, match=missing):
        rehearse.load_compose(dotenv)


def test_interpolation_follows_compose() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert (
        interpolate("${SET}-${EMPTY:-d}-${EMPTY-d}-${UNSET:-d}-$SET-$$SET", env) == "v-d--d-v-$SET"
    )
    assert interpolate("${SET:?no}${EMPTY?no}", env) == "v"
    with pytest.raises(MissingVariableError, match="EMPTY: say so"):
        interpolate("${EMPTY:?say so}", env)
    with pytest.raises(MissingVariableError, match="UNSET"):
        interpolate("${UNSET}", env)


def test_images_are_read_from_their_final_stage() -> None:
    api = compose_env.image(rehearse.ROOT / "Dockerfile.api")
    assert api.workdir == "/app" and api.cmd == ["python", "-m", "api.serve"]
    assert ("api/", "api/") in api.copies and not any("requirements" in s for s, _ in api.copies)
    assert api.env["API_HOST"] == "0.0.0.0" and api.healthcheck[0] == "python"  # noqa: S104


def test_services_start_after_their_dependencies() -> None:
    services = rehearse.load_compose(DOTENV)["services"]
    order = compose_env.up_order(services, {"postgres", "redis"})
    assert order.index("prefect-server") < order.index("etl-worker")
    assert set(order) == {"prefect-server", "api", "etl-worker", "stream"}


def _stage(tmp_path: Path) -> rehearse.Stage:
    addresses = {
        "postgres:5432": "127.0.0.1:5432",
        "redis:6379": "127.0.0.1:6379",
        "prefect-server:4200": "127.0.0.1:4201",
        "api:8000": "127.0.0.1:8001",
    }
    return rehearse.Stage(tmp_path, DOTENV, addresses, 15, {"prefect-server": 4201, "api": 8001})


def test_every_url_a_service_gets_points_at_a_service_the_rehearsal_runs(tmp_path: Path) -> None:
    compose = rehearse.load_compose(DOTENV)
    for name in ("api", "etl-worker", "stream"):
        env = rehearse.prepare(_stage(tmp_path / name), compose, name).env
        assert env["DATABASE_URL"].startswith("postgresql://postgres:"), name
        assert "@127.0.0.1:5432/crypto" in env["DATABASE_URL"], name
    worker = rehearse.prepare(_stage(tmp_path / "w"), compose, "etl-worker").env
    assert worker["PREFECT_API_URL"] == "http://127.0.0.1:4201/api"
    assert Path(worker["KAGGLE_DATA_PATH"], "coin_Bitcoin.csv").is_file()  # the bind mount
    api = rehearse.prepare(_stage(tmp_path / "a"), compose, "api").env
    stream = rehearse.prepare(_stage(tmp_path / "s"), compose, "stream")
    # The worker publishes where every API worker's SSE hub listens.
    assert stream.env["STREAM_REDIS_URL"] == api["STREAM_REDIS_URL"] == "redis://127.0.0.1:6379/15"
    assert stream.env["STREAM_REDIS_CHANNEL"] == api["STREAM_REDIS_CHANNEL"] == "crypto:updates"
    # Gemini itself is the outside world unless the operator's .env says otherwise.
    assert stream.env["GEMINI_WS_URL"] == "wss://api.gemini.com/v2/marketdata"
    assert stream.env["GEMINI_BASE_URL"] == "https://api.gemini.com"
    assert stream.command == ["python", "-m", "etl.stream"]
    assert stream.healthcheck == []  # compose disables the image's Prefect check


def test_the_stream_service_takes_gemini_and_its_channel_from_dotenv(tmp_path: Path) -> None:
    dotenv = DOTENV | {
        "GEMINI_WS_URL": "ws://127.0.0.1:9001",
        "GEMINI_BASE_URL": "http://127.0.0.1:9002",
        "STREAM_REDIS_CHANNEL": "elsewhere",
    }
    env = rehearse.prepare(_stage(tmp_path), rehearse.load_compose(dotenv), "stream").env
    assert (env["GEMINI_WS_URL"], env["GEMINI_BASE_URL"], env["STREAM_REDIS_CHANNEL"]) == (
        "ws://127.0.0.1:9001",
        "http://127.0.0.1:9002",
        "elsewhere",
    )


def test_a_stream_channel_the_api_does_not_follow_is_caught() -> None:
    compose: dict[str, Any] = copy.deepcopy(rehearse.load_compose(DOTENV))
    compose["services"]["api"]["environment"]["STREAM_REDIS_CHANNEL"] = "crypto:other"
    assert rehearse.stream_mismatch(compose) == {
        "STREAM_REDIS_CHANNEL": ("crypto:updates", "crypto:other")
    }
    assert rehearse.stream_mismatch(rehearse.load_compose(DOTENV)) == {}


def test_a_wrong_url_is_caught_before_anything_starts(tmp_path: Path) -> None:
    compose: dict[str, Any] = copy.deepcopy(rehearse.load_compose(DOTENV))
    env = compose["services"]["api"]["environment"]
    env["DATABASE_URL"] = env["DATABASE_URL"].replace("@postgres:", "@postgress:")
    with pytest.raises(rehearse.RehearsalError, match="postgress"):
        rehearse.prepare(_stage(tmp_path), compose, "api")


def test_a_port_mapping_to_a_port_nothing_listens_on_is_caught(tmp_path: Path) -> None:
    compose: dict[str, Any] = copy.deepcopy(rehearse.load_compose(DOTENV))
    compose["services"]["api"]["ports"] = ["8080:8080"]
    with pytest.raises(rehearse.RehearsalError, match="listens on 8000, compose publishes"):
        rehearse.prepare(_stage(tmp_path), compose, "api")


def test_a_wrong_command_fails_the_rehearsal_with_the_services_log(tmp_path: Path) -> None:
    postgres_admin().dispose()  # skips (fails in CI) without PostgreSQL
    with rehearse.local_backends(tmp_path) as stage:
        compose = copy.deepcopy(rehearse.load_compose(stage.dotenv))
        compose["services"]["api"]["command"][-1] = (
            "alembic upgrade head && exec python -m api.serv"
        )
        service = rehearse.start(stage, rehearse.prepare(stage, compose, "api"))
        with pytest.raises(rehearse.RehearsalError, match=r"(?s)exited with 1.*api\.serv"):
            rehearse.wait_for(stage, "api", "healthy", lambda: rehearse.healthy(stage, service), 60)
