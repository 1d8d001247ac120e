"""Measure the relay: `python -m server.bench [--model large] [--clients 4] [--rounds 3] [--processes N]
[--redis [URL]] [--json FILE]`.

1. aggregation (in this process, one thread): validate one f16 delta of the model and add it to
   the float64 running sum, repeated; then close a round (outer step, f16 encode, W_{r+1}, sha256).
2. loopback (a real relay subprocess, uvicorn, 127.0.0.1): --clients clients join, then each
   round every client sends an f16 DELTA at once and waits for round_closed + UPDATE. Measured:
   bytes per parameter per round on the wire, both directions, per client (WebSocket frames
   with their headers; the join's WEIGHTS frame and live_loss chatter are not per-round traffic);
   ingest MB/s (DELTA bytes / time from the first send to the last submit_ack, validation and
   aggregation included); the round's close time; and the event loop's responsiveness: a separate
   process requests /api/health every 20 ms during the rounds and records the slowest answer
   (the relay answers it on the same event loop that receives and broadcasts the frames).
   Also the whole machine's busy CPU-seconds per round (/proc/stat, Linux): with the clients, the
   relays and Redis on the same cores, clients x cores / that is the most deltas / s any spread of
   the same work over relay processes could reach on them.
   With --redis, the relay is --processes N processes of one deployment on a Redis (URL, or a
   redis-server this benchmark starts on a free port), the clients spread over them round-robin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pyscript_app.federated.frames import (DTYPE_BY_NAME, DTYPE_F16, HEADER_SIZE, KIND_DELTA, FrameHeader, encode_frame,
                                          encode_header)

REPO = Path(__file__).resolve().parents[1]


def ws_frame_bytes(payload: int, masked: bool) -> int:
    """Bytes on the wire of one WebSocket frame (RFC 6455 header + payload; TCP/IP not counted)."""
    extra = 0 if payload < 126 else 2 if payload < 65536 else 8
    return 2 + extra + (4 if masked else 0) + payload


# --- 1. aggregation in process -------------------------------------------------------------------


def bench_aggregation(model: str, repeats: int) -> dict:
    from . import aggregate
    from .protocol import build_session_config
    from .settings import RelaySettings

    config = build_session_config({"model": model, "dataset": "names", "max_local_steps": 1000},
                                  RelaySettings(), init_seed=1)
    P = config.param_count
    rng = np.random.default_rng(0)
    frames = [encode_frame(KIND_DELTA, DTYPE_F16, (rng.standard_normal(P) * 1e-3).astype("<f2").tobytes(),
                           round=0, tokens=1000 + k, loss=2.0) for k in range(2)]
    values = np.empty(P, np.float32)
    total = aggregate.WeightedSum(P)
    validate_s, add_s = [], []
    for k in range(repeats + 1):  # the first pass warms buffers (page faults) and is not counted
        t0 = time.perf_counter()
        delta = aggregate.validate_delta(frames[k % 2], config, values)
        t1 = time.perf_counter()
        total.add(delta.values, delta.header.tokens, delta.header.loss)
        t2 = time.perf_counter()
        if k:
            validate_s.append(t1 - t0)
            add_s.append(t2 - t1)
    weights = rng.standard_normal(P).astype(np.float32)
    close_s = []
    for _ in range(2):
        t0 = time.perf_counter()
        aggregate.close_round(total, weights, config, None, DTYPE_BY_NAME["f16"])
        close_s.append(time.perf_counter() - t0)
    per_update = float(np.median(validate_s)) + float(np.median(add_s))
    return {"param_count": P, "validate_ms": 1e3 * float(np.median(validate_s)),
            "add_ms": 1e3 * float(np.median(add_s)), "updates_per_s": 1.0 / per_update,
            "close_round_ms": 1e3 * min(close_s)}


# --- 2. loopback relay ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_relay(port: int, log, redis_url: str | None = None, clients: int = 32) -> subprocess.Popen:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "TABGPT_RELAY_TICK_INTERVAL_S": "0.02",
           # every simulated client comes from 127.0.0.1
           "TABGPT_RELAY_MAX_SOCKETS_PER_ADDRESS": str(10 * clients + 64),
           "TABGPT_RELAY_MAX_CLIENTS_PER_SESSION": str(max(32, clients)),
           **({"TABGPT_RELAY_REDIS_URL": redis_url} if redis_url else {})}
    code = f"from server import run; run('127.0.0.1', {port}, None)"
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=log)


# a separate process (its own GIL): GET url every 20 ms until a line arrives on stdin; prints the
# slowest answer in ms
PROBE = """
import sys, threading, time, httpx
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
slowest = 0.0
with httpx.Client(timeout=30) as http:
    while not stop.is_set():
        t0 = time.perf_counter()
        http.get("{url}")
        slowest = max(slowest, time.perf_counter() - t0)
        time.sleep(0.02)
print(slowest * 1e3)
"""


class BenchClient:
    def __init__(self, ws, session_id: str, name: str):
        self.ws, self.session_id, self.name = ws, session_id, name
        self.sent = self.received = 0
        self.round = 0

    async def send(self, data: str | bytes) -> None:
        size = len(data.encode()) if isinstance(data, str) else len(data)
        self.sent += ws_frame_bytes(size, masked=True)
        await self.ws.send(data)

    async def recv_until(self, kind: str, count_bytes: bool = True) -> dict | bytes:
        """Frames until a JSON message of type `kind` (or "tensor": a binary frame)."""
        while True:
            frame = await self.ws.recv()
            size = len(frame.encode()) if isinstance(frame, str) else len(frame)
            msg = json.loads(frame) if isinstance(frame, str) else None
            if count_bytes and not (msg and msg["type"] in ("live_loss", "clients_changed")):
                self.received += ws_frame_bytes(size, masked=False)
            if kind == "tensor" and msg is None:
                return frame
            if msg is not None and msg["type"] == kind:
                return msg


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, all) CPU-seconds of the whole machine since boot, summed over its cores, from
    /proc/stat (Linux; None elsewhere). Busy is everything but idle and iowait: on a machine
    running nothing else, the relay processes, Redis and the simulated clients together."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def cpu_bound(clients: int, cores: int, cpu_s_per_round: float) -> float:
    """Deltas / s that `cores` could reach at most if they were busy all the time with a round's work
    of `cpu_s_per_round` CPU-seconds (clients deltas per round). Spreading the same work over more
    relay processes cannot pass it; the relay traffic between processes only adds work."""
    return clients * cores / cpu_s_per_round


async def bench_loopback(bases: list[str], model: str, clients: int, rounds: int) -> dict:
    import httpx
    from websockets.asyncio.client import connect

    base = bases[0]
    async with httpx.AsyncClient(timeout=60) as http:
        r = await http.post(base + "/api/sessions", json={
            "model": model, "dataset": "names", "quorum": clients, "round_seconds": 3600, "grace_seconds": 1,
            "max_local_steps": 1000})
        r.raise_for_status()
        s = r.json()
    sid, P = s["session_id"], s["param_count"]
    urls = [b.replace("http", "ws", 1) + "/ws" for b in bases]
    # max_queue=None: a client takes every frame at once, so a close never waits behind unread ones
    options = dict(max_size=None, max_queue=None, compression=None, open_timeout=60, ping_interval=None)
    sockets = [await connect(urls[i % len(urls)], **options) for i in range(clients)]  # round-robin
    workers = [BenchClient(ws, sid, f"bench{i}") for i, ws in enumerate(sockets)]
    for c in workers:
        await c.send(json.dumps({"type": "join", "session_id": sid, "name": c.name}))
        await c.recv_until("join_ack", count_bytes=False)
        await c.recv_until("tensor", count_bytes=False)  # the WEIGHTS frame: a join cost, not per round
    rng = np.random.default_rng(1)
    # each client's DELTA frame is made once; a round rewrites only its header (the round number),
    # so the simulated clients, on the relay's cores, cost little more than their sockets
    frames = [bytearray(encode_frame(KIND_DELTA, DTYPE_F16, (rng.standard_normal(P) * 1e-3).astype("<f2").tobytes(),
                                     round=0, tokens=1000, loss=2.0)) for _ in range(clients)]
    prober = subprocess.Popen([sys.executable, "-c", PROBE.format(url=base + "/api/health")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    await asyncio.sleep(0.5)
    ingest, closes, per_round, cpu, walls = [], [], [], [], []
    for rnd in range(rounds):
        for c in workers:
            c.sent = c.received = 0
        for f in frames:
            f[:HEADER_SIZE] = encode_header(FrameHeader(KIND_DELTA, DTYPE_F16, rnd, P, tokens=1000, loss=2.0))
        cpu0, t0 = machine_cpu_seconds(), time.perf_counter()

        async def submit(c: BenchClient, frame: bytes) -> float:
            await c.send(frame)
            await c.recv_until("submit_ack")
            return time.perf_counter()

        acked = await asyncio.gather(*(submit(c, f) for c, f in zip(workers, frames)))
        t_ack = max(acked)

        async def finish(c: BenchClient) -> float:
            await c.recv_until("round_closed")
            await c.recv_until("tensor")
            t = time.perf_counter()
            await c.recv_until("round_started")
            return t

        done = await asyncio.gather(*(finish(c) for c in workers))
        cpu1, walls = machine_cpu_seconds(), walls + [time.perf_counter() - t0]
        if cpu0 is not None and cpu1 is not None:
            cpu.append(cpu1[0] - cpu0[0])
        ingest.append(sum(len(f) for f in frames) / (t_ack - t0) / 1e6)
        closes.append(max(done) - t_ack)
        per_round.append({"up": workers[0].sent / P, "down": workers[0].received / P})
    slowest_ms = float(prober.communicate("stop\n", timeout=30)[0])
    await asyncio.gather(*(ws.close() for ws in sockets))
    return {"param_count": P, "clients": clients, "rounds": rounds, "processes": len(bases),
            "rounds_completed": len(closes), "aggregation_updates_per_s": float(np.median(
                [clients / (c + (sum(len(f) for f in frames) / i / 1e6)) for c, i in zip(closes, ingest)])),
            "bytes_per_param_up": float(np.mean([r["up"] for r in per_round])),
            "bytes_per_param_down": float(np.mean([r["down"] for r in per_round])),
            "ingest_mb_per_s": float(np.median(ingest)), "ingest_mb_per_s_all": ingest,
            "round_close_s": float(np.median(closes)), "slowest_health_ms": slowest_ms,
            "round_wall_s": float(np.median(walls)),
            # the whole machine's busy CPU-seconds per round (None where /proc/stat is missing)
            "machine_cpu_s_per_round": float(np.median(cpu)) if cpu else None,
            "machine_cpu_s_all": cpu}


def start_redis() -> tuple[subprocess.Popen, str, tempfile.TemporaryDirectory]:
    """A throwaway redis-server (no persistence) on a free loopback port: (process, URL, its folder)."""
    import shutil

    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("--redis without a URL needs redis-server (apt-get install redis-server)")
    folder, port = tempfile.TemporaryDirectory(), _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder.name, "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0", folder


async def _loopback(model: str, clients: int, rounds: int, processes: int = 1, redis: str | None = None) -> dict:
    import httpx

    own_redis = None
    if redis == "start":
        own_redis, redis, _folder = start_redis()
    log = tempfile.TemporaryFile()
    ports = [_free_port() for _ in range(processes)]
    procs = [start_relay(port, log, redis, clients) for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base in bases:
            for _ in range(400):
                try:
                    if httpx.get(base + "/api/health", timeout=0.5).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
            else:
                log.seek(0)
                raise RuntimeError("the relay did not start: " + log.read().decode()[-2000:])
        return await bench_loopback(bases, model, clients, rounds)
    finally:
        for proc in procs + ([own_redis] if own_redis else []):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m server.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="large", help="preset (default large)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10, help="deltas aggregated in process")
    p.add_argument("--processes", type=int, default=1, help="relay processes (more than 1 needs --redis)")
    p.add_argument("--redis", nargs="?", const="start", default=None, metavar="URL",
                   help="relay processes of one deployment on this Redis (no URL: start a redis-server)")
    p.add_argument("--json", default=None, help="write the figures to this file")
    args = p.parse_args(argv)
    if args.processes > 1 and args.redis is None:
        p.error("--processes N > 1 needs --redis")
    load_before = os.getloadavg()  # the cores are shared: say how busy they were
    agg = bench_aggregation(args.model, args.repeats)
    wire = asyncio.run(_loopback(args.model, args.clients, args.rounds, args.processes, args.redis))
    machine = f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores available"
    rows = [
        ("parameters", f"{agg['param_count']:,}", ""),
        ("bytes / param / round, client -> relay", f"{wire['bytes_per_param_up']:.3f}", "goal <= 2 in total"),
        ("bytes / param / round, relay -> client", f"{wire['bytes_per_param_down']:.3f}", ""),
        ("ingest of f16 deltas (MB/s)", f"{wire['ingest_mb_per_s']:.0f}", "goal >= 150"),
        ("aggregation updates / s (validate + add)", f"{agg['updates_per_s']:.1f}", "goal >= 10"),
        ("  validate one delta (ms)", f"{agg['validate_ms']:.1f}", ""),
        ("  add to the float64 sum (ms)", f"{agg['add_ms']:.1f}", ""),
        ("close a round in process (ms)", f"{agg['close_round_ms']:.0f}", "outer step, encode, sha256"),
        ("close a round on loopback (s)", f"{wire['round_close_s']:.2f}", "last ack -> UPDATE received"),
        ("rounds completed", f"{wire['rounds_completed']}/{args.rounds}", "every client got every update"),
        ("relay aggregation, deltas / s", f"{wire['aggregation_updates_per_s']:.1f}",
         "clients / (ingest + close), per round"),
        ("slowest /api/health during rounds (ms)", f"{wire['slowest_health_ms']:.0f}", "the event loop stays free"),
    ]
    cores = len(os.sched_getaffinity(0))
    if wire["machine_cpu_s_per_round"]:
        wire["cores"] = cores
        wire["cpu_bound_updates_per_s"] = cpu_bound(args.clients, cores, wire["machine_cpu_s_per_round"])
        rows += [("machine CPU per round (CPU-s)", f"{wire['machine_cpu_s_per_round']:.2f}",
                  f"in {wire['round_wall_s']:.2f} s: relays, Redis and clients"),
                 ("deltas / s with every core busy", f"{wire['cpu_bound_updates_per_s']:.1f}",
                  f"clients x {cores} cores / CPU per round: no spread passes it")]
    where = f"{args.processes} process(es) on Redis" if args.redis else "one process"
    print(f"relay benchmark: {args.model}, {args.clients} clients, {args.rounds} rounds, {where}; {machine}")
    for name, value, note in rows:
        print(f"  {name:<44} {value:>12}   {note}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": args.model, "machine": machine, "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "command": " ".join(["python -m server.bench", *(sys.argv[1:] if argv is None else argv)]),
            "load_average": {"before": load_before, "after": os.getloadavg()},
            "aggregation": agg, "loopback": wire}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
