"""`/docs` works air-gapped: the page and every asset it names come from the app itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.helpers import api_settings

pytestmark = pytest.mark.parametrize("api_database", ["sqlite"], indirect=True)

EXTERNAL = re.compile(r"(https?:)?//[\w.-]+\.[a-z]{2,}", re.IGNORECASE)


class AssetLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


def page_links(html: str) -> list[str]:
    parser = AssetLinks()
    parser.feed(html)
    # the schema and the OAuth2 redirect are named in the inline script, not in attributes
    scripted = re.findall(r"url: '([^']+)'", html) + re.findall(r"origin \+ '([^']+)'", html)
    return parser.links + scripted


@pytest.fixture
def anonymous(api_database: str) -> Iterator[TestClient]:
    """No key: the docs are open when enabled, as they were with the CDN page."""
    with TestClient(create_app(api_settings(api_database))) as client:
        yield client


def test_docs_page_and_every_asset_it_names_are_served_by_the_app(anonymous: TestClient) -> None:
    page = anonymous.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert EXTERNAL.search(page.text) is None, EXTERNAL.search(page.text)
    links = page_links(page.text)
    expected = {
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/docs/assets/favicon.png",
        "/openapi.json",
        "/docs/oauth2-redirect",
    }
    assert expected <= set(links)
    for link in links:
        assert link.startswith("/"), link
        answer = anonymous.get(link)
        assert answer.status_code == 200, link
        assert len(answer.content) > 100, link
    css = anonymous.get("/docs/assets/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css")
    assert re.search(r"url\((['\"]?)(https?:)?//", css.text) is None  # no web fonts or images
    redirect = anonymous.get("/docs/oauth2-redirect")
    assert EXTERNAL.search(redirect.text) is None


def test_bundled_swagger_ui_reads_openapi_3_1(anonymous: TestClient) -> None:
    """FastAPI emits OpenAPI 3.1; Swagger UI 4 (swagger-ui-bundle 1.1) renders it blank."""
    assert anonymous.get("/openapi.json").json()["openapi"].startswith("3.1")
    bundle = anonymous.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert b"isOAS31" in bundle.content  # Swagger UI 5's OpenAPI 3.1 support


def test_docs_assets_stay_out_of_the_schema_and_redoc_is_off(anonymous: TestClient) -> None:
    paths = anonymous.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/docs")]
    assert anonymous.get("/redoc").status_code == 404


def test_disabled_docs_serve_neither_page_nor_assets(api_database: str) -> None:
    with TestClient(create_app(api_settings(api_database, docs_enabled=False))) as client:
        for path in ("/docs", "/docs/assets/swagger-ui-bundle.js", "/docs/oauth2-redirect"):
            assert client.get(path).status_code == 404, path
