"""What a container would get, read from docker-compose.yml and the Dockerfiles as data:
Compose's `${VAR}` interpolation, each image's final-stage ENV / WORKDIR / COPY / CMD, and
the rewrite of service addresses (`postgres:5432`) to where the rehearsal runs them.
No Docker engine is needed; `rehearse.py` starts the results as local processes."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR, and $$.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariableError(ValueError):
    """A `${VAR}` without default that the environment does not set."""


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's substitution. Unlike Compose (which warns and substitutes ""), an unset
    variable without a default is an error here: that is the mistake to catch."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        op, arg = match["op"], match["arg"] or ""
        value = variables.get(name)
        unset = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-") and unset:
            return interpolate(arg, variables)
        if op in (":?", "?") and unset:
            raise MissingVariableError(f"{name}: {arg or 'required'}")
        if value is None:
            raise MissingVariableError(f"{name} is not set and has no default")
        return value

    return _VARIABLE.sub(substitute, text)


def resolve(node: Any, variables: Mapping[str, str]) -> Any:
    """Interpolate every string in a loaded compose document."""
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [resolve(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: resolve(value, variables) for key, value in node.items()}
    return node


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment:` as a dict (Compose allows a mapping or `KEY=value` list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


@dataclass
class Image:
    """The final stage of a Dockerfile: what a container of it starts with."""

    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    copies: list[tuple[str, str]] = field(default_factory=list)  # (source, destination)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)  # its CMD, exec form


def image(dockerfile: Path) -> Image:
    text = dockerfile.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    final = max(i for i, line in enumerate(instructions) if line.upper().startswith("FROM "))
    result = Image()
    for line in instructions[final + 1 :]:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ENV":
            result.env.update(item.partition("=")[::2] for item in shlex.split(rest))
        elif keyword == "WORKDIR":
            result.workdir = str(Path(result.workdir, rest.strip()))
        elif keyword == "COPY" and "--from" not in rest:
            *sources, destination = shlex.split(rest)
            result.copies += [(source, destination) for source in sources]
        elif keyword == "CMD":
            result.cmd = json.loads(rest)
        elif keyword == "HEALTHCHECK" and (found := re.search(r"\bCMD\s+(\[.*\])\s*$", rest)):
            result.healthcheck = json.loads(found[1])
    return result


def up_order(services: Mapping[str, Any], already_up: set[str]) -> list[str]:
    """Services in `depends_on` order (what `docker compose up` waits for)."""
    order: list[str] = []
    pending = [name for name in services if name not in already_up]
    while pending:
        ready = [n for n in pending if set(services[n].get("depends_on") or []) <= already_up]
        if not ready:
            raise ValueError(f"depends_on cycle or unknown service among {pending}")
        order += ready
        already_up |= set(ready)
        pending = [n for n in pending if n not in ready]
    return order


def rewrite_addresses(value: str, addresses: Mapping[str, str]) -> str:
    """Replace `service:port` after `//` or `@` (URLs) by its local `host:port`."""
    for source, target in addresses.items():
        value = re.sub(rf"(?<=[/@]){re.escape(source)}(?![\w.-])", target, value)
    return value


def published_ports(service: Mapping[str, Any]) -> list[tuple[str, int]]:
    """`ports:` as (host interface, container port); no interface means every interface."""
    out = []
    for entry in service.get("ports") or []:
        parts = str(entry).split(":")
        interface = parts[0] if len(parts) == 3 else "0.0.0.0"  # noqa: S104 - Compose's default
        out.append((interface, int(parts[-1].split("/")[0])))
    return out
