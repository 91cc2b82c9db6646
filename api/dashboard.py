"""`/dashboard/`: the browser dashboard, served whole from this process (no CDN: it works
air-gapped), like `/docs`.

The page shell and its static files (`api/static/`: the app's JavaScript and CSS, and the
vendored chart library, api/vendor/) are open: a browser's visit cannot send a header, and
they hold no data. Everything the page shows comes from the keyed API: the page asks for a
key once, keeps it in `sessionStorage` and sends it as `X-API-Key` (docs/decisions.md).
None of these paths are API operations, so none is in the OpenAPI schema.

The files are gzip-compressed for clients that accept it (`api.middleware.Compression`:
the chart library is 198 KB as shipped, 62 KB compressed), and revalidated on every load
(`no-cache` + ETag): an upgraded API never runs with yesterday's script.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

DASHBOARD_URL = "/dashboard"
ASSETS_URL = "/dashboard/assets"
STATIC = Path(__file__).with_name("static")
# Scripts and styles only from this origin; data only from this API (fetch, EventSource).
# Styles allow inline: the chart library sizes its canvases through style attributes.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
}


class _RevalidatedFiles(StaticFiles):
    """Static files that a browser revalidates on each load (304 when unchanged)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_no_cache(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                headers.append((b"cache-control", b"no-cache"))
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_no_cache)  # type: ignore[arg-type]


def install_dashboard(app: FastAPI) -> None:
    """The page at `/dashboard/` (`/dashboard` redirects there, so the page's relative
    links work behind a proxy that strips a prefix) and its files under `/dashboard/assets/`."""
    shell = (STATIC / "index.html").read_bytes()
    app.mount(ASSETS_URL, _RevalidatedFiles(directory=STATIC), name="dashboard-assets")

    async def page(request: Request) -> Response:  # noqa: ARG001
        return HTMLResponse(shell, headers=PAGE_HEADERS)

    async def to_page(request: Request) -> Response:  # noqa: ARG001
        return RedirectResponse("dashboard/", status_code=308)

    app.add_route(f"{DASHBOARD_URL}/", page, include_in_schema=False)
    app.add_route(DASHBOARD_URL, to_page, include_in_schema=False)
