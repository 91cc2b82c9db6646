"""What every local HTTP double of an exchange shares: a real threaded server on a free
loopback port, the requests it saw (in arrival order), and faults queued per path prefix,
each served once (`fail`)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Protocol, TypeVar


class Arrival(Protocol):
    path: str


SeenT = TypeVar("SeenT", bound=Arrival)
DoubleT = TypeVar("DoubleT", bound="HttpDouble[Any]")


@dataclass(kw_only=True)
class HttpDouble(Generic[SeenT]):
    requests: list[SeenT] = field(default_factory=list)
    faults: dict[str, deque[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail(self, path_prefix: str, *faults: str) -> None:
        """Serve `faults` (in order) to the next requests whose path has this prefix."""
        with self.lock:
            self.faults.setdefault(path_prefix, deque()).extend(faults)

    def count(self, path_prefix: str = "/") -> int:
        with self.lock:
            return sum(r.path.startswith(path_prefix) for r in self.requests)

    def next_fault(self, path: str) -> str | None:
        with self.lock:
            for prefix, queue in self.faults.items():
                if path.startswith(prefix) and queue:
                    return queue.popleft()
        return None

    def record(self, seen: SeenT) -> SeenT:
        with self.lock:
            self.requests.append(seen)
        return seen


def serve(double: DoubleT, handler: type[BaseHTTPRequestHandler]) -> DoubleT:
    """Serve `double` with `handler` (its `double` attribute set) until `shut`."""
    bound = type("Handler", (handler,), {"double": double})
    server = ThreadingHTTPServer(("127.0.0.1", 0), bound)
    server.daemon_threads = True
    double.server = server
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return double


def shut(double: HttpDouble[Any]) -> None:
    if double.server is not None:
        double.server.shutdown()
        double.server.server_close()
