"""Circuit breakers shared per process: one per remote host or venue and breaker settings.

Clients that agree on the failure count and reset time share a breaker's state (a second
client for the same exchange sees it open); a client with other values gets its own
rather than silently running on the first one's.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pybreaker

_BREAKERS: dict[tuple[str, int, float], pybreaker.CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def shared_breaker(
    name: str, *, fail_max: int, reset_seconds: float, exclude: Sequence[type[Exception]] = ()
) -> pybreaker.CircuitBreaker:
    """The breaker for `name`: after `fail_max` failed calls in a row it opens, and calls
    fail at once for `reset_seconds`. Exceptions of the `exclude` types (our own bad
    request) neither count nor reset the count."""
    key = (name, fail_max, reset_seconds)
    with _BREAKERS_LOCK:
        if key not in _BREAKERS:
            _BREAKERS[key] = pybreaker.CircuitBreaker(
                fail_max=fail_max,
                reset_timeout=reset_seconds,
                exclude=list(exclude),
                throw_new_error_on_trip=False,
                name=name,
            )
        return _BREAKERS[key]


def reset_breakers() -> None:
    """Forget every breaker (tests, or an operator after fixing the network)."""
    with _BREAKERS_LOCK:
        _BREAKERS.clear()
