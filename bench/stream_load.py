"""Stream benchmark: from the exchange's send to the SSE client's receive, as deployed.

    python bench/stream_load.py [--mode both|redis|database] [--database sqlite|postgres]
                                [--seconds 30] [--rate 1000] [--clients 100]

The Gemini v2 WebSocket double (bench/stream_feed.py, own process) sends `--rate` trades a
second over 4 pairs for `--seconds`; the REST double (symbols, backfill candles) runs here.
The stream worker runs as deployed (`python -m etl.stream`), the API too (`python -m
api.serve`, 1 worker, access log on, auth and the default rate limits on, the default
stream caps: 5 streams per key, so one key per 5 clients), and `--clients` SSE clients
stream `/api/crypto/stream` from `--client-processes` processes (bench/sse_clients.py).

Two modes: `redis` (STREAM_REDIS_URL set: the worker publishes each live trade on receipt,
before its batched write; the API's hub subscribes) and `database` (no Redis: the API polls
the ticker rows the worker writes, one per changed pair per flush). What an update is, and
so what "lost" counts, differs (docs/performance.md): in Redis mode every trade sent must
reach every client; following the database, every ticker row written must. Latency is the
client's receive time minus the double's send time of the trade whose price the event
carries (same clock); "staleness" is, for every trade, the time until each client held it
or a newer price of its pair. Also measured over the sending window: worker and API CPU
(/proc/<pid>/stat), database write transactions per second (PostgreSQL: pg_stat_database
xact_commit; SQLite: the WAL index's change counter, bumped once per write transaction), and
the RSS of worker and API (start, middle, end, after the drain). Prints a table and writes
bench/out/stream_load.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from bench.sse_clients import RedisTap, run_clients  # noqa: E402
from bench.stream_analysis import analyse, report  # noqa: E402
from bench.stream_feed import COIN_IDS, run_feed  # noqa: E402
from etl.db.models import Asset, RejectedRow, StreamSession, Ticker  # noqa: E402
from tests import gemini_double  # noqa: E402
from tests.processes import command_env, free_port, wait_for  # noqa: E402

PER_KEY = 5  # STREAM_MAX_PER_KEY's default: the bench gives every 5 clients their own key
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def database(kind: str, workdir: Path, postgres_url: str) -> Iterator[tuple[str, Any]]:
    """A fresh database and a function counting its write transactions so far."""
    if kind == "sqlite":
        path = workdir / "stream.db"

        def sqlite_commits() -> int:  # WalIndexHdr.iChange: +1 per committed write
            shm = path.with_name(path.name + "-shm")
            return int.from_bytes(shm.read_bytes()[8:12], sys.byteorder) if shm.exists() else 0

        yield f"sqlite:///{path}", sqlite_commits
        return
    name = f"streambench_{secrets.token_hex(4)}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def postgres_commits() -> int:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            query = text("SELECT xact_commit FROM pg_stat_database WHERE datname = :n")
            return int(conn.execute(query, {"n": name}).scalar_one())

    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False), postgres_commits
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def launch(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sample(pids: dict[str, int]) -> dict[str, dict[str, float]]:
    return {name: {"cpu_s": cpu_seconds(pid), "rss_mb": rss_mb(pid)} for name, pid in pids.items()}


def run_mode(mode: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    go, stop = ctx.Event(), ctx.Event()
    feed_end, feed_conn = ctx.Pipe()
    progress: Any = ctx.Queue()
    channel = f"bench-stream-{secrets.token_hex(4)}"
    redis_url = args.redis_url if mode == "redis" else ""
    keys = [
        f"bench-stream-{i:03d}-{secrets.token_hex(12)}" for i in range(-(-args.clients // PER_KEY))
    ]
    rest = gemini_double.start(gemini_double.GeminiDouble(now_ms=int(time.time() * 1000)))
    feeder = ctx.Process(target=run_feed, args=(feed_conn, go, stop, args.rate, args.seconds))
    feeder.start()
    processes: list[subprocess.Popen[bytes]] = []
    clients: list[Any] = []
    with database(args.database, workdir, args.postgres_url) as (url, commits):
        try:
            ws_url = (
                feed_end.recv() if feed_end.poll(30) else sys.exit("the WS double did not start")
            )
            common = {"DATABASE_URL": url, "LOG_LEVEL": "INFO", "STREAM_REDIS_URL": redis_url}
            common |= {"STREAM_REDIS_CHANNEL": channel, "GEMINI_BASE_URL": rest.url}
            worker_env = command_env(**common, GEMINI_WS_URL=ws_url, COIN_IDS=COIN_IDS)
            worker = launch(
                [sys.executable, "-m", "etl.stream"], worker_env, workdir / "worker.log"
            )
            processes.append(worker)
            if not feed_end.poll(60) or feed_end.recv() != "subscribed":
                sys.exit(f"the worker did not subscribe:\n{(workdir / 'worker.log').read_text()}")
            port = free_port()
            api_env = command_env(**common, API_KEYS=",".join(keys), API_HOST="127.0.0.1")
            api_env |= {"API_PORT": str(port), "RATE_LIMIT_KEY_PREFIX": channel}
            api = launch([sys.executable, "-m", "api.serve"], api_env, workdir / "api.log")
            processes.append(api)
            base = f"http://127.0.0.1:{port}"
            wait_for(f"{base}/health/live", api, workdir / "api.log")
            numbers = list(range(args.clients))
            for p in range(args.client_processes):
                mine = numbers[p :: args.client_processes]
                client_args = (
                    p,
                    mine,
                    f"{base}/api/crypto/stream",
                    [keys[n // PER_KEY] for n in mine],
                )
                clients.append(
                    ctx.Process(
                        target=run_clients, args=(*client_args, progress, stop, str(workdir))
                    )
                )
                clients[-1].start()
            ready, received = _wait_ready(progress, args.clients)
            tap = RedisTap(redis_url, channel) if redis_url else None
            if tap is not None:
                tap.start()
            pids = {"worker": worker.pid, "api": api.pid}
            pids |= {f"clients{p.pid}": p.pid for p in clients} | {"feed": feeder.pid}
            samples = {"start": sample(pids)}
            commits_start = commits()
            go.set()
            time.sleep(args.seconds / 2)
            samples["middle"] = sample(pids)
            if not feed_end.poll(args.seconds * 4 + 30):
                sys.exit("the feed did not finish")
            feed = feed_end.recv()
            samples["end"] = sample(pids)
            commits_end = commits()
            drained = _drain(progress, received)
            samples["drained"] = sample(pids)
            stop.set()
            for process in clients:
                process.join(60)
            tapped = tap.stop() if tap is not None else None
            rows, sessions, rejected = _written(url)
        finally:
            stop.set()
            for process in reversed(processes):
                stop_process(process)
            feeder.join(10)
            gemini_double.stop(rest)
    return analyse(
        mode=mode,
        args=args,
        workdir=workdir,
        feed=feed,
        tapped=tapped,
        rows=rows,
        samples=samples,
        window_s=feed["seconds"],
        commits=commits_end - commits_start,
        extra={
            "clients_answered": ready,
            "drain_s": drained,
            "sessions": sessions,
            "rejected_rows": rejected,
            "keys": len(keys),
            "client_processes": args.client_processes,
        },
    )


def _wait_ready(progress: Any, clients: int) -> tuple[int, dict[int, int]]:
    """Wait until every client's stream answered (at most 60 s); how many did."""
    ready: dict[int, int] = {}
    received: dict[int, int] = {}
    deadline = time.monotonic() + 60
    while sum(ready.values()) < clients and time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            kind, process, value = progress.get(timeout=0.5)
            (ready if kind == "ready" else received)[process] = value
    return sum(ready.values()), received


def _drain(progress: Any, received: dict[int, int]) -> float:
    """Wait until no client received anything for 2 s (at most 60 s); the seconds waited."""
    started = time.monotonic()
    last_change, last_total = started, -1
    while time.monotonic() - last_change < 2 and time.monotonic() - started < 60:
        with contextlib.suppress(Exception):
            kind, process, value = progress.get(timeout=0.2)
            if kind == "received":
                received[process] = value
        total = sum(received.values())
        if total != last_total:
            last_change, last_total = time.monotonic(), total
    return time.monotonic() - started


def _written(url: str) -> tuple[list[tuple[str, float]], int, int]:
    """The ticker rows the worker wrote (symbol, last), its sessions and quarantined rows."""
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Asset.symbol, Ticker.last)
            .join(Asset, Asset.id == Ticker.asset_id)
            .order_by(Ticker.id)
        ).all()
        sessions = conn.execute(select(func.count()).select_from(StreamSession)).scalar_one()
        rejected = conn.execute(select(func.count()).select_from(RejectedRow)).scalar_one()
    engine.dispose()
    return [(str(s), float(last)) for s, last in rows], int(sessions), int(rejected)


def redis_reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["both", "redis", "database"], default="both")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=int, default=1000, help="trades per second, all pairs")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--postgres-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "out" / "stream_load.json")
    args = parser.parse_args()
    command = " ".join(["python bench/stream_load.py", *sys.argv[1:]])
    modes = ["redis", "database"] if args.mode == "both" else [args.mode]
    results: list[dict[str, Any]] = []
    for mode in modes:
        if mode == "redis" and not redis_reachable(args.redis_url):
            if args.mode == "redis":
                raise SystemExit(f"no Redis at {args.redis_url} (--redis-url)")
            print(f"redis mode skipped: no Redis at {args.redis_url}\n")
            continue
        with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
            results.append(run_mode(mode, args, Path(tmp)))
        print(report(results[-1]))
    machine = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"command": command, "machine": machine, "runs": results}, indent=2)
    )
    print(f"reproduce: {command}\nfigures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
