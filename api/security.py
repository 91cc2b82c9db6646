"""API-key authentication (`X-API-Key`), attached where routers are included.

Keys come from `API_KEY` and `API_KEYS` (comma-separated, for rotation; an entry may be
`sha256:<hex>` so the plain key never sits in the environment). The presented key is
hashed and compared in constant time with every accepted digest. A key never appears in a
log line, an error or a metric label: its fingerprint (first 12 hex of its SHA-256) does.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from api.errors import Problem

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="your API key")


async def require_api_key(
    request: Request, key: Annotated[str | None, Security(API_KEY_HEADER)] = None
) -> str:
    """The caller's key fingerprint; 401 problem when the key is missing or wrong.

    `async` on purpose: it does no I/O, and a plain `def` would cost a thread-pool hop on
    every request."""
    digests: list[bytes] = request.app.state.key_digests
    challenge = {"WWW-Authenticate": "ApiKey"}
    if not key:
        raise Problem(
            401, "missing_api_key", "send your key in the X-API-Key header", headers=challenge
        )
    presented = hashlib.sha256(key.encode()).digest()
    matched = False
    for digest in digests:  # no early exit: the time does not depend on which key matched
        matched |= hmac.compare_digest(presented, digest)
    if not matched:
        request.app.state.auth_failures.record(request)
        raise Problem(401, "invalid_api_key", "the API key is not valid", headers=challenge)
    request.state.key_fingerprint = presented.hex()[:12]
    return request.state.key_fingerprint  # type: ignore[no-any-return]
