"""The hashed locks: every transitive package pinned with hashes, in step with the
requirements files they come from, free of any index address, installed with
`--require-hashes` by `make install` and both images, and past the known CVEs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCKS = {"api": "requirements-api.txt", "etl": "requirements.txt", "dev": "requirements-dev.txt"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")
# (package, first fixed version, advisories)
FIXED = [
    ("starlette", (0, 49, 1), "CVE-2025-62727"),
    ("filelock", (3, 20, 3), "CVE-2025-68146, CVE-2026-22701"),
]


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def locked(lock: str) -> dict[str, str]:
    """name -> version of every package in a lock, checking each carries a sha256 hash."""
    text = (ROOT / "requirements" / f"{lock}.lock").read_text()
    pins: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", text.strip()):
        match = PIN.match(block)
        assert match, f"{lock}.lock: not a pinned requirement: {block[:80]!r}"
        assert "--hash=sha256:" in block, f"{lock}.lock: {match[1]} has no hash"
        pins[_name(match[1])] = match[3]
    return pins


def pinned(requirements: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / requirements).read_text().splitlines():
        if (match := PIN.match(line.strip())) is not None:
            pins[_name(match[1])] = match[3]
        elif line.startswith("-r "):
            pins |= pinned(line.split()[1])
    return pins


@pytest.mark.parametrize(("lock", "requirements"), LOCKS.items())
def test_each_lock_pins_what_its_requirements_pin(lock: str, requirements: str) -> None:
    have, want = locked(lock), pinned(requirements)
    drift = {
        name: (version, have.get(name))
        for name, version in want.items()
        if have.get(name) != version
    }
    assert not drift, f"run `make lock`: {requirements} vs requirements/{lock}.lock: {drift}"
    assert len(have) > len(want)  # the transitive packages are pinned too


@pytest.mark.parametrize("lock", [*LOCKS, "pip"])
def test_locks_name_no_index_or_host(lock: str) -> None:
    text = (ROOT / "requirements" / f"{lock}.lock").read_text()
    assert not re.search(r"--(extra-)?index-url|--find-links|--trusted-host|://", text)


@pytest.mark.parametrize("lock", LOCKS)
def test_locked_versions_are_past_the_known_advisories(lock: str) -> None:
    versions = locked(lock)
    for package, fixed, advisories in FIXED:
        have = tuple(int(part) for part in versions[package].split(".")[:3])
        assert have >= fixed, f"{package} {versions[package]} in {lock}.lock: {advisories}"


def test_make_and_both_images_install_their_lock_with_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r requirements/dev.lock" in makefile
    assert re.search(r"^lock:", makefile, re.MULTILINE)
    for image, lock in (("Dockerfile.api", "api"), ("Dockerfile.etl", "etl")):
        text = (ROOT / image).read_text()
        assert f"--require-hashes --prefix=/install -r {lock}.lock" in text
        assert "requirements.txt" not in text and "requirements-api.txt" not in text
