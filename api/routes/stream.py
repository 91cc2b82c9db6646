"""Prices and candle bars pushed to clients as Server-Sent Events.

`GET /api/crypto/stream?symbols=BTC,ETH` answers `text/event-stream`: `price` and `candle`
events (each with an id), a comment heartbeat every STREAM_HEARTBEAT_SECONDS, and a final
`error` event when the client fell too far behind. `Last-Event-ID` resumes from the hub's
replay buffer; when that id is no longer there, a `reset` event says so before live events.

Authentication: the `X-API-Key` header, or, because browsers' EventSource cannot send
headers, `?token=` from `POST /api/crypto/stream/token`: short-lived (STREAM_TOKEN_SECONDS),
scoped to the stream, HMAC-signed with the cursor key under its own domain prefix (so no
cursor is a token). A token works on the stream route only; it carries the key's
fingerprint, so the per-key stream limit counts it.
"""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response, Security
from pydantic import BaseModel
from sqlalchemy import Engine
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.deps import StateDep
from api.errors import Problem
from api.params import SymbolsQuery
from api.rate_limit import RouteLimits
from api.responses import body_of
from api.security import API_KEY_HEADER, require_api_key
from api.state import state_of
from api.streaming import StreamHub, Subscriber
from etl.read.assets import selected_assets

TOKEN_DOMAIN = b"stream-token:"  # cursors are signed without it: the domains never meet
TOKEN_SCOPE = "stream"  # noqa: S105 - a scope name, not a secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(key: bytes, fingerprint: str, expires: int, scope: str = TOKEN_SCOPE) -> str:
    data = json.dumps({"s": scope, "k": fingerprint, "e": expires}, separators=(",", ":"))
    mac = hmac.new(key, TOKEN_DOMAIN + data.encode(), hashlib.sha256).digest()
    return f"{_b64(data.encode())}.{_b64(mac)}"


def token_fingerprint(key: bytes, token: str, now: float) -> str:
    """The key fingerprint a valid stream token carries; 401 problem otherwise."""
    try:
        data_text, mac_text = token.split(".")
        data = _unb64(data_text)
        expected = hmac.new(key, TOKEN_DOMAIN + data, hashlib.sha256).digest()
        if not hmac.compare_digest(_unb64(mac_text), expected):
            raise ValueError("signature")
        claims = json.loads(data)
        if claims["s"] != TOKEN_SCOPE or not isinstance(claims["k"], str):
            raise ValueError("scope")
        if float(claims["e"]) < now:
            raise Problem(401, "expired_token", "the stream token has expired; ask a new one")
        return str(claims["k"])
    except (ValueError, TypeError, KeyError) as exc:
        raise Problem(401, "invalid_token", "the stream token is not valid") from exc


async def stream_caller(
    request: Request,
    key: Annotated[str | None, Security(API_KEY_HEADER)] = None,
    token: Annotated[str | None, Query(max_length=512, description="from /stream/token")] = None,
) -> str:
    """The caller's key fingerprint, from a stream token or else the key header."""
    if token is not None:
        state = state_of(request)
        state.auth_failures.check(request)
        try:
            return token_fingerprint(state.cursor_key, token, time.time())
        except Problem:
            await state.auth_failures.record(request)
            raise
    return await require_api_key(request, key)


class StreamToken(BaseModel):
    token: str
    expires_in: int


def _notice(name: str, detail: str) -> ServerSentEvent:
    return ServerSentEvent(json.dumps({"detail": detail}), event=name)


async def _events(
    hub: StreamHub, subscriber: Subscriber, last_event_id: str | None
) -> AsyncIterator[ServerSentEvent | bytes]:
    """The client's events: frames already encoded by the hub, several per write."""
    try:
        if last_event_id:
            resume = hub.resume(last_event_id, subscriber.symbols, until=subscriber.joined)
            if resume.lost:
                yield _notice("reset", "events after Last-Event-ID are no longer kept")
            if resume.events:
                yield b"".join(kept.frame for kept in resume.events)
        while (frames := await hub.frames(subscriber)) is not None:
            yield frames
        yield _notice("error", "the client fell too far behind; reconnect")
    finally:
        hub.unsubscribe(subscriber)


def build(limits: RouteLimits, hub: StreamHub) -> APIRouter:
    """Included without the keyed dependency: each route declares its own auth."""
    router = APIRouter(prefix="/api/crypto/stream", tags=["stream"])

    @router.post("/token", response_model=StreamToken, dependencies=[Depends(require_api_key)])
    @limits.data
    async def stream_token(request: Request, state: StateDep) -> Response:
        """A token for `?token=` on the stream route, for clients that cannot send
        headers (browsers' EventSource): valid STREAM_TOKEN_SECONDS, for streams only."""
        seconds = state.settings.stream_token_seconds
        fingerprint: str = request.state.key_fingerprint
        token = issue_token(state.cursor_key, fingerprint, int(time.time()) + seconds)
        body = body_of(StreamToken(token=token, expires_in=seconds))
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    @router.get("", response_class=EventSourceResponse)
    @limits.data
    async def stream(
        request: Request,  # noqa: ARG001 - the rate limiter reads it
        state: StateDep,
        caller: Annotated[str, Depends(stream_caller)],
        symbols: SymbolsQuery = None,
        last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    ) -> EventSourceResponse:
        """Server-Sent Events: `price` and `candle` updates of `symbols` (default all)."""
        chosen = None
        if symbols:
            engine = state.engine
            assets = await run_in_threadpool(_symbols, engine, symbols)
            chosen = frozenset(assets)
        subscriber = hub.subscribe(caller, chosen)
        return EventSourceResponse(
            _events(hub, subscriber, last_event_id),
            ping=state.settings.stream_heartbeat_seconds,
            send_timeout=30,  # a client that stops reading is closed, not waited on
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router


def _symbols(engine: Engine, symbols: str) -> list[str]:
    with engine.connect() as conn:
        return [asset.symbol for asset in selected_assets(conn, symbols)]
