"""API-key authentication (`X-API-Key`), attached where routers are included.

Keys come from `API_KEY` and `API_KEYS` (comma-separated, for rotation; an entry may be
`sha256:<hex>` so the plain key never sits in the environment). The presented key is
hashed and compared in constant time with every accepted digest, as the bytes sent; a key
header over `MAX_KEY_BYTES` (256) is refused without hashing. Past the wrong-key limit per
address (`RATE_LIMIT_AUTH_FAILURES`) an address gets 429 before any key is compared.
A key never appears in a log line, an error or a metric label: its fingerprint (first 12
hex of its SHA-256) does.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from api.errors import Problem
from api.settings import MAX_KEY_BYTES
from api.state import state_of

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="your API key")


async def require_api_key(
    request: Request, key: Annotated[str | None, Security(API_KEY_HEADER)] = None
) -> str:
    """The caller's key fingerprint; 401 problem when the key is missing or wrong, 429 when
    the caller's address is past the wrong-key limit (checked first, see AuthFailureLimit).

    `async` on purpose: it does no I/O, and a plain `def` would cost a thread-pool hop on
    every request."""
    failures = state_of(request).auth_failures
    failures.check(request)
    challenge = {"WWW-Authenticate": "ApiKey"}
    if not key:
        raise Problem(
            401, "missing_api_key", "send your key in the X-API-Key header", headers=challenge
        )
    # Starlette decodes header values as latin-1, so this is the bytes as sent: a key with
    # non-ASCII characters matches when the client sends it UTF-8 encoded, as it is stored.
    presented_bytes = key.encode("latin-1")
    matched = False
    presented = b""
    if len(presented_bytes) <= MAX_KEY_BYTES:  # longer is wrong, and not worth a hash
        presented = hashlib.sha256(presented_bytes).digest()
        for digest in state_of(request).key_digests:  # no early exit: constant time
            matched |= hmac.compare_digest(presented, digest)
    if not matched:
        await failures.record(request)
        raise Problem(401, "invalid_api_key", "the API key is not valid", headers=challenge)
    request.state.key_fingerprint = presented.hex()[:12]
    return request.state.key_fingerprint  # type: ignore[no-any-return]
