"""`/dashboard/`: the page shell and its files are served by the app itself (no CDN), open
without a key, out of the OpenAPI schema, compressed; the vendored chart library is the
pinned build with its licence."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

from fastapi.testclient import TestClient

from api.dashboard import CONTENT_SECURITY_POLICY, STATIC
from api.main import create_app
from tests.api.helpers import api_settings

ROOT = Path(__file__).resolve().parents[2]
PIN = ROOT / "api" / "vendor" / "lightweight-charts.pin"
# What the overview and asset pages load: every file, compressed, must stay under 500 KB
# with the API's answers (measured in the browser by tests/api/test_dashboard_speed.py).
FILES = ["index.html", "app.css", *(f"js/{p.name}" for p in (STATIC / "js").glob("*.js"))]


def pinned() -> dict[str, str]:
    lines = PIN.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_the_shell_and_its_files_need_no_key_and_are_not_in_the_schema(
    client: TestClient,
) -> None:
    bare = {"X-API-Key": ""}
    moved = client.get("/dashboard", headers=bare, follow_redirects=False)
    assert moved.status_code == 308 and moved.headers["location"] == "dashboard/"
    page = client.get("/dashboard/", headers=bare)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert 'name="api_key"' in page.text
    for src in re.findall(r'(?:src|href)="(assets/[^"]+)"', page.text):
        assert client.get(f"/dashboard/{src}", headers=bare).status_code == 200, src
    script = client.get("/dashboard/assets/vendor/lightweight-charts.js", headers=bare)
    assert script.status_code == 200 and script.headers["cache-control"] == "no-cache"
    assert client.get("/dashboard/assets/js/api.js", headers=bare).status_code == 200
    assert client.get("/dashboard/assets/../settings.py", headers=bare).status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/dashboard")]
    assert client.get("/api/crypto/latest", headers=bare).status_code == 401  # data is keyed


def test_files_are_compressed_for_browsers(client: TestClient) -> None:
    with client.stream(
        "GET", "/dashboard/assets/vendor/lightweight-charts.js", headers={"Accept-Encoding": "gzip"}
    ) as answer:
        raw = b"".join(answer.iter_raw())
    assert answer.headers["content-encoding"] == "gzip"
    original = (STATIC / "vendor" / "lightweight-charts.js").read_bytes()
    assert gzip.decompress(raw) == original
    assert len(raw) < 70_000 < len(original)
    total = sum(len(gzip.compress((STATIC / name).read_bytes())) for name in FILES)
    assert total + len(raw) < 150_000  # the page's own code, all of it


def test_the_vendored_chart_library_is_the_pinned_build_with_its_licence() -> None:
    pin = pinned()
    assert pin["name"] == "lightweight-charts" and pin["license"] == "Apache-2.0"
    vendored = (STATIC / "vendor" / "lightweight-charts.js").read_bytes()
    assert hashlib.sha256(vendored).hexdigest() == pin["sha256"]
    assert f"v{pin['version']}".encode() in vendored[:200]
    licence = (STATIC / "vendor" / "lightweight-charts.LICENSE.txt").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for name in FILES:
        text = (STATIC / name).read_text()
        # links to read elsewhere (the chart attribution) are fine; loads are not
        loads = r"(?:src=|<link[^>]*href=|from |import\(|fetch\(|url\()[\"']?(https?://[^\"' )]+)"
        urls = re.findall(loads, text)
        assert urls == [], (name, urls)


def test_the_dashboard_can_be_switched_off(api_database: str) -> None:
    app = create_app(api_settings(api_database, dashboard_enabled=False))
    with TestClient(app) as client:
        assert client.get("/dashboard/").status_code == 404
        assert client.get("/dashboard/assets/app.css").status_code == 404
