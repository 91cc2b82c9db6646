"""`make run`'s last step: a random local key on first run, never a default one."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.serve import ensure_local_key


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
