"""The client side of the stream benchmark: `count` SSE clients of `/api/crypto/stream` in
one process (asyncio + httpx), each recording, per `price` event, the pair, the price in
cents and the receive time (`time.time_ns()` when its chunk arrived). Frames are split by
hand on the raw bytes (no per-line iteration) to keep the clients' own CPU small: the
benchmark measures the server, and the clients share its two cores.

The process reports to `progress` as ("ready", process, streams open) and
("received", process, events so far), and on `stop` writes one `client-<n>.npz` per client
(arrays `pair`, `cents`, `recv_ns`) and `clients-<process>.json` (status, errors, drops).
`RedisTap` records the same from the worker's Redis channel.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventFlag
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis

from bench.stream_feed import PAIR_OF_SYMBOL


@dataclass
class ClientLog:
    number: int
    status: int | None = None
    error: str | None = None
    dropped: bool = False  # the server's final `error` event: fell too far behind
    candles: int = 0
    other: int = 0  # events that are not prices of the benchmark's pairs
    pair: array[int] = field(default_factory=lambda: array("q"))
    cents: array[int] = field(default_factory=lambda: array("q"))
    recv_ns: array[int] = field(default_factory=lambda: array("q"))

    def frame(self, frame: bytes, now_ns: int) -> None:
        name, data = b"message", b""
        for line in frame.split(b"\r\n"):
            if line.startswith(b"event: "):
                name = line[7:]
            elif line.startswith(b"data: "):
                data = line[6:]
        if not data:
            return  # a heartbeat comment
        if name == b"price":
            fields = json.loads(data)
            pair = PAIR_OF_SYMBOL.get(fields["symbol"])
            if pair is not None:
                self.pair.append(pair)
                self.cents.append(round(fields["price"] * 100))
                self.recv_ns.append(now_ns)
                return
        elif name == b"candle":
            self.candles += 1
            return
        elif name == b"error":
            self.dropped = True
        self.other += 1

    def meta(self) -> dict[str, object]:
        return {
            "client": self.number,
            "status": self.status,
            "error": self.error,
            "dropped": self.dropped,
            "candles": self.candles,
            "other": self.other,
            "prices": len(self.recv_ns),
        }


def run_clients(
    process: int,
    numbers: list[int],
    url: str,
    keys: list[str],
    progress: Queue[tuple[str, int, int]],
    stop: EventFlag,
    outdir: str,
) -> None:
    """Process entry: client `numbers[i]` streams `url` with `keys[i]` until `stop`."""
    asyncio.run(_clients(process, numbers, url, keys, progress, stop, Path(outdir)))


async def _clients(
    process: int,
    numbers: list[int],
    url: str,
    keys: list[str],
    progress: Queue[tuple[str, int, int]],
    stop: EventFlag,
    outdir: Path,
) -> None:
    logs = [ClientLog(n) for n in numbers]
    limits = httpx.Limits(max_connections=len(numbers) + 1, max_keepalive_connections=0)
    timeout = httpx.Timeout(30.0, read=None)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        tasks = [
            asyncio.create_task(_stream(client, url, k, log))
            for k, log in zip(keys, logs, strict=True)
        ]
        ready = -1
        while not stop.is_set():
            await asyncio.sleep(0.1)
            opened = sum(log.status is not None for log in logs)
            if opened != ready:
                ready = opened
                progress.put(("ready", process, opened))
            progress.put(("received", process, sum(len(log.recv_ns) for log in logs)))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for log in logs:
        np.savez(
            outdir / f"client-{log.number}.npz",
            pair=np.frombuffer(log.pair, dtype=np.int64),
            cents=np.frombuffer(log.cents, dtype=np.int64),
            recv_ns=np.frombuffer(log.recv_ns, dtype=np.int64),
        )
    (outdir / f"clients-{process}.json").write_text(json.dumps([log.meta() for log in logs]))


async def _stream(client: httpx.AsyncClient, url: str, key: str, log: ClientLog) -> None:
    try:
        async with client.stream("GET", url, headers={"X-API-Key": key}) as response:
            if response.status_code != 200:
                await response.aread()
                log.error = f"{response.status_code}: {response.text[:200]}"
                log.status = response.status_code
                return
            log.status = 200
            pending = b""
            async for chunk in response.aiter_bytes():
                now_ns = time.time_ns()
                *frames, pending = (pending + chunk).split(b"\r\n\r\n")
                for frame in frames:
                    log.frame(frame, now_ns)
    except httpx.HTTPError as exc:
        log.error = f"{type(exc).__name__}: {exc}"
        if log.status is None:
            log.status = 0
    except asyncio.CancelledError:
        return


class RedisTap(threading.Thread):
    """One more subscriber of the worker's Redis channel, in the benchmark's own (idle)
    process: when each price left the worker, so the worker's hop (exchange -> Redis) is
    measured apart from the API's (Redis -> SSE client)."""

    def __init__(self, url: str, channel: str) -> None:
        super().__init__(daemon=True)
        self.pubsub = redis.Redis.from_url(url).pubsub()  # type: ignore[no-untyped-call]
        self.pubsub.subscribe(channel)  # before the first trade: nothing is missed
        self.log = ClientLog(-1)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is None:
                continue
            now_ns = time.time_ns()
            fields = json.loads(message["data"])
            pair = PAIR_OF_SYMBOL.get(fields["symbol"])
            if fields["kind"] == "price" and pair is not None:
                self.log.pair.append(pair)
                self.log.cents.append(round(fields["price"] * 100))
                self.log.recv_ns.append(now_ns)

    def stop(self) -> dict[str, np.ndarray[Any, Any]]:
        self.done.set()
        self.join(5)
        self.pubsub.close()
        log = self.log
        return {
            "pair": np.frombuffer(log.pair, dtype=np.int64),
            "cents": np.frombuffer(log.cents, dtype=np.int64),
            "recv_ns": np.frombuffer(log.recv_ns, dtype=np.int64),
        }
