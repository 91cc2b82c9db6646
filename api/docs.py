"""`/docs`, served whole from this process: self-hosted installs are often air-gapped, and
FastAPI's default page loads Swagger UI from a CDN (a blank page offline).

The assets are Swagger UI 5's (OpenAPI 3.1, which FastAPI emits), shipped by the pinned
`fastapi-offline` package; only its static files are used, the app stays ours. ReDoc is
off (it would also fetch web fonts). Like `/openapi.json`, the page is open when
`DOCS_ENABLED`: it describes the API, never its data.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
# Swagger UI's validator badge would call validator.swagger.io; keep the page self-contained.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """The Swagger UI page, its OAuth2 redirect and its assets, none of them in the schema."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")  # behind a proxy that strips a prefix
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    async def swagger_ui_redirect(request: Request) -> HTMLResponse:  # noqa: ARG001
        return get_swagger_ui_oauth2_redirect_html()

    # Plain routes, as FastAPI adds its own docs: not API operations, so no key and no schema.
    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_URL, swagger_ui_redirect, include_in_schema=False)
