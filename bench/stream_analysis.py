"""The stream benchmark's figures from what the double sent, what the worker wrote and what
each client received (bench/stream_load.py runs it; its docstring says what is measured).

An update, per mode: `redis`, every trade sent (each is published on receipt), so each
client expects all of them; `database`, every ticker row written (one per changed pair per
flush: the API follows rows, trades between two flushes are coalesced into one), so each
client expects all rows. Lost = expected updates a client never received, summed over the
clients that connected; clients refused or dropped by the server are counted apart.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.stream_feed import BASE_CENTS, PAIR_OF_SYMBOL, PAIRS

TARGET_P99_MS = {"redis": 100.0, "database": 1500.0}
FLAT_RSS = 0.10  # "flat": at most 10% growth from the start of sending to after the drain
BATCH_SECONDS, BATCH_UPDATES = 1.0, 500  # the worker's defaults (STREAM_BATCH_*)

Figures = dict[str, Any]


def _percentiles(values: list[np.ndarray[Any, Any]]) -> dict[str, float | None]:
    joined = np.concatenate(values) if values else np.zeros(0)
    if not joined.size:
        return {"p50": None, "p99": None, "max": None, "count": 0}
    p50, p99 = np.percentile(joined, [50, 99])
    return {
        "p50": float(p50),
        "p99": float(p99),
        "max": float(joined.max()),
        "count": int(joined.size),
    }


def analyse(
    *,
    mode: str,
    args: argparse.Namespace,
    workdir: Path,
    feed: dict[str, Any],
    tapped: dict[str, np.ndarray[Any, Any]] | None,
    rows: list[tuple[str, float]],
    samples: dict[str, dict[str, dict[str, float]]],
    window_s: float,
    commits: int,
    extra: dict[str, Any],
) -> Figures:
    sent = np.frombuffer(feed["sent_ns"], dtype=np.int64)
    total, n = sent.size, len(PAIRS)
    base = np.array(BASE_CENTS, dtype=np.int64)
    if mode == "redis":
        expected = np.arange(total)
    else:
        pairs = np.array([PAIR_OF_SYMBOL.get(symbol, 0) for symbol, _ in rows], dtype=np.int64)
        cents = np.array([round(last * 100) for _, last in rows], dtype=np.int64)
        expected = np.unique((cents - base[pairs]) * n + pairs)
    metas = [m for f in sorted(workdir.glob("clients-*.json")) for m in json.loads(f.read_text())]
    connected = [m for m in metas if m["status"] == 200]
    lost, unknown, duplicates = [], 0, 0
    latencies: list[np.ndarray[Any, Any]] = []
    staleness: list[np.ndarray[Any, Any]] = []
    never = 0
    for meta in connected:
        got = np.load(workdir / f"client-{meta['client']}.npz")
        pair, recv = got["pair"], got["recv_ns"]
        seq = got["cents"] - base[pair]
        index = seq * n + pair
        known = (seq >= 0) & (index < total)
        unknown += int((~known).sum())
        pair, seq, index, recv = pair[known], seq[known], index[known], recv[known]
        unique = np.unique(index)
        duplicates += int(index.size - unique.size)
        lost.append(int(expected.size - np.intersect1d(unique, expected).size))
        latencies.append((recv - sent[index]) / 1e6)
        for p in range(n):  # every trade: until this client held it or a newer price
            mine = pair == p
            held = np.maximum.accumulate(seq[mine]) if mine.any() else np.zeros(0, np.int64)
            trades = np.arange(p, total, n) // n
            first = np.searchsorted(held, trades, side="left")
            reached = first < held.size
            never += int((~reached).sum())
            times = recv[mine][first[reached]]
            staleness.append((times - sent[trades[reached] * n + p]) / 1e6)
    start, middle, end, drained = (samples[k] for k in ("start", "middle", "end", "drained"))

    def cpu(name: str) -> float:
        return 100 * (end[name]["cpu_s"] - start[name]["cpu_s"]) / window_s

    client_cpu = sum(cpu(k) for k in start if k.startswith("clients"))
    rss = {
        who: [round(s[who]["rss_mb"], 1) for s in (start, middle, end, drained)]
        for who in ("worker", "api")
    }
    latency = _percentiles(latencies)
    worker_hop: Figures = {"published": None, "latency_ms": _percentiles([])}
    if tapped is not None:  # exchange -> Redis, the worker's part of the Redis mode's latency
        seq = tapped["cents"] - base[tapped["pair"]]
        index = seq * n + tapped["pair"]
        known = (seq >= 0) & (index < total)
        hop = (tapped["recv_ns"][known] - sent[index[known]]) / 1e6
        worker_hop = {
            "published": int(np.unique(index[known]).size),
            "latency_ms": _percentiles([hop]),
        }
    tx_per_s = commits / window_s
    tx_bound = 1 / BATCH_SECONDS + args.rate / BATCH_UPDATES
    figures: Figures = {
        "mode": mode,
        "database": args.database,
        "seconds": args.seconds,
        "rate": args.rate,
        "clients": args.clients,
        "trades_sent": int(total),
        "send_seconds": round(feed["seconds"], 3),
        "sender_most_late_ms": round(feed["most_late_ms"], 1),
        "ws_connections": feed["connections"],
        "ticker_rows": len(rows),
        "trades_per_row": round(total / len(rows), 1) if rows else None,
        "expected_per_client": int(expected.size),
        "clients_connected": len(connected),
        "clients_refused": [m["error"] for m in metas if m["status"] != 200],
        "clients_dropped": sum(m["dropped"] for m in connected),
        "lost_total": sum(lost),
        "lost_clients": sum(1 for x in lost if x),
        "lost_max_per_client": max(lost, default=0),
        "duplicates": duplicates,
        "unknown_prices": unknown,
        "candle_events": sum(m["candles"] for m in connected),
        "latency_ms": latency,
        "staleness_ms": _percentiles(staleness) | {"never": never},
        "worker_to_redis": worker_hop,
        "cpu_percent": {
            "worker": round(cpu("worker"), 1),
            "api": round(cpu("api"), 1),
            "clients": round(client_cpu, 1),
            "feed": round(cpu("feed"), 1),
        },
        "db_write_tx": commits,
        "db_write_tx_per_s": round(tx_per_s, 2),
        "rss_mb_start_middle_end_drained": rss,
        **extra,
    }
    target = TARGET_P99_MS[mode]
    p99 = latency["p99"]
    figures["targets"] = {
        "lost == 0": sum(lost) == 0
        and len(connected) == args.clients
        and not figures["clients_dropped"],
        f"p99 < {target:.0f} ms": p99 is not None and p99 < target,
        "RSS flat (<= 10%)": all(r[-1] <= r[0] * (1 + FLAT_RSS) for r in rss.values()),
    }
    if args.database == "sqlite":  # PostgreSQL's count holds reads and autovacuum too
        figures["targets"][f"write tx/s <= {tx_bound:.1f} (batching)"] = tx_per_s <= tx_bound
    return figures


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def report(f: Figures) -> str:
    lat, stale, cpu = f["latency_ms"], f["staleness_ms"], f["cpu_percent"]
    rss, hop = f["rss_mb_start_middle_end_drained"], f["worker_to_redis"]
    unit = "trades" if f["mode"] == "redis" else "ticker rows"
    lines = [
        f"== {f['mode']} mode, {f['database']}: {f['rate']} trades/s x {f['seconds']:g} s, "
        f"{f['clients']} SSE clients ({f['client_processes']} client processes, "
        f"{f['keys']} keys) ==",
        f"  sent                  {f['trades_sent']} trades in {f['send_seconds']} s "
        f"(sender at most {f['sender_most_late_ms']} ms behind schedule); "
        f"{f['ws_connections']} WS connection(s), {f['sessions']} stream session(s)",
        f"  written               {f['ticker_rows']} ticker rows "
        f"({f['trades_per_row']} trades a row), {f['rejected_rows']} quarantined",
        f"  clients               {f['clients_connected']} connected, "
        f"{f['clients_dropped']} dropped by the server, {len(f['clients_refused'])} refused",
        f"  updates per client    {f['expected_per_client']} expected ({unit})",
        f"  lost                  {f['lost_total']} in total, {f['lost_clients']} clients lost "
        f"some, at most {f['lost_max_per_client']} for one; {f['duplicates']} duplicates",
        f"  latency send->client  p50 {_ms(lat['p50'])} ms  p99 {_ms(lat['p99'])} ms  "
        f"max {_ms(lat['max'])} ms  ({lat['count']} events)",
        f"  staleness, per trade  p50 {_ms(stale['p50'])} ms  p99 {_ms(stale['p99'])} ms  "
        f"max {_ms(stale['max'])} ms  ({stale['never']} trade-client pairs never reached)",
        *(
            [
                f"  exchange->Redis       {hop['published']} trades published; p50 "
                f"{_ms(hop['latency_ms']['p50'])} ms  p99 {_ms(hop['latency_ms']['p99'])} ms  "
                f"max {_ms(hop['latency_ms']['max'])} ms (a tap on the channel)"
            ]
            if hop["published"] is not None
            else []
        ),
        f"  CPU (% of one core)   worker {cpu['worker']}  API {cpu['api']}  "
        f"clients {cpu['clients']}  feed {cpu['feed']}",
        f"  DB write tx           {f['db_write_tx']} = {f['db_write_tx_per_s']}/s"
        + (
            ""
            if f["database"] == "sqlite"
            else " (pg_stat_database xact_commit: the API's reads and autovacuum count too)"
        ),
        f"  RSS MB start/mid/end/drained  worker {rss['worker']}  API {rss['api']}",
        f"  drain after sending   {f['drain_s']:.1f} s",
        "  targets               "
        + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in f["targets"].items()),
    ]
    if f["clients_refused"]:
        lines.append(f"  refused: {f['clients_refused'][:3]}")
    return "\n".join(lines) + "\n"
