"""One error shape for everything: RFC 9457 `application/problem+json`.

`{"type", "title", "status", "detail", "code", "request_id"}`; `type` is a relative URI
`/problems/<code>`. Every error path of the app goes through here, including unknown
routes (404), wrong methods (405), validation errors (422), rate limits (429) and
unexpected failures (500: logged with the traceback and the request id, no internals in
the answer). Routes raise; they never build error bodies.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from etl.core.errors import GeminiBusyError, GeminiError, UnknownAssetError

log = logging.getLogger("api.errors")
PROBLEM_JSON = "application/problem+json"
# On every error answer, even one sent outside the middleware (a 500 is sent by Starlette's
# outermost layer): an error is never cached, and never sniffed into another content type.
ERROR_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """Raise from anywhere in the API to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = headers or {}
        self.extra = extra or {}


def problem_response(
    request: Request,
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = {
        "type": f"/problems/{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": getattr(request.state, "request_id", None),
        **(extra or {}),
    }
    headers = {**(headers or {}), **ERROR_HEADERS}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def is_client_error(exc: BaseException) -> bool:
    """Whether `exc` is answered with a 4xx: the caller's mistake, not worth a traceback."""
    if isinstance(exc, Problem):
        return exc.status < 500
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code < 500
    return isinstance(exc, UnknownAssetError | RequestValidationError)


async def _problem(request: Request, exc: Problem) -> JSONResponse:
    return problem_response(
        request, exc.status, exc.code, exc.detail, headers=exc.headers, extra=exc.extra
    )


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    detail = str(exc.detail) if exc.detail else _TITLES.get(exc.status_code, "Error")
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such route"  # the path is the caller's text: never echoed back
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(request, exc.status_code, code, detail, headers=headers)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return problem_response(
        request, 422, "validation_error", f"{where}: {first['msg']}", extra={"errors": errors}
    )


async def _unknown_asset(request: Request, exc: UnknownAssetError) -> JSONResponse:
    return problem_response(request, 404, exc.code, f"unknown symbol {exc.text!r}")


async def _gemini(request: Request, exc: GeminiError) -> JSONResponse:
    detail = (
        "Gemini's request budget is in use and nothing is cached; ask again shortly"
        if isinstance(exc, GeminiBusyError)
        else "Gemini is unreachable and nothing is cached"
    )
    return problem_response(
        request, 503, "gemini_unavailable", detail, headers={"Retry-After": "60"}
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # noqa: ARG001
    # Runs outside the request middleware: name the request id explicitly.
    request_id = getattr(request.state, "request_id", None)
    log.exception("unhandled error", extra={"path": request.url.path, "request_id": request_id})
    return problem_response(
        request,
        500,
        "internal_error",
        "unexpected error; quote the request id",
        headers={"X-Request-ID": request_id} if request_id else None,
    )


_HANDLERS: tuple[tuple[type[Exception], Any], ...] = (
    (Problem, _problem),
    (StarletteHTTPException, _http),
    (RequestValidationError, _invalid),
    (UnknownAssetError, _unknown_asset),
    (GeminiError, _gemini),
    (Exception, _unexpected),
)


def install_error_handlers(app: FastAPI) -> None:
    """Every error becomes one problem document, whatever raised it."""
    for exc_type, handler in _HANDLERS:
        app.add_exception_handler(exc_type, handler)
