"""A round's close sharded by parameter ranges (server/cluster_rounds.py mixes this into ClusterRelay).

The leader's plan names the holders (the processes holding at least one counted delta, sorted)
and gives each a shard: a contiguous range [lo, hi) of the P parameters (partials.shard_ranges).
Every holder, on `plan`:

    forward   for each other holder's range, its deltas' contribution to that range, whichever is
              smaller: the raw delta slices, concatenated in client-id order (2 bytes per f16
              element, 4 per f32, per delta), or their int64 partial (8 bytes per element)
              -> s:ID:fwd:PLAN:FROM:TO (TTL), then parts[fwd:FROM] = {plan, clients, dtypes, kind}
    sum       T = Σ q_k over its range and over ALL counted deltas: its own from memory, the
              others' from their forwards (exact int64, so the same T whoever adds it)
    step      the outer step on its range (W_r and m slices) -> u, W_{r+1}, m slices
    stage     SETRANGE into s:ID:next:PLAN:u / :w / :m (TTL), then parts[done:FROM] = {plan}

Everything in the outer step is elementwise, so the staged u, W_{r+1} and m are bit-identical to
one process's over the whole vector. The leader waits for every done, assembles W_{r+1} and its
sha256, and commits by renaming the staged keys (cluster_keys.COMMIT). PLAN is the first 16 hex
digits of the plan JSON's sha256: a plan that is written again unchanged (a new leader closing
the same frozen deltas) reuses the work already stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass

import numpy as np

from pyscript_app.federated.frames import DTYPE_BY_NAME, DTYPE_F16

from . import aggregate, partials
from .aggregate import CHUNK, Held

log = logging.getLogger("tabgpt.relay.cluster")

TEMP_TTL_MS = 600_000  # forwards and staged values of a plan that is never committed expire
# per element: raw slices are forwarded while no larger than an int64 partial (up to four f16
# deltas); at equal size raw wins, as the receiver then makes the q_k of its own range and every
# holder does the same share of the work
RAW_MAX_BYTES = 8


def plan_id(plan_json: bytes) -> str:
    return hashlib.sha256(plan_json).hexdigest()[:16]


def element_bytes(dtype: int) -> int:
    return 2 if dtype == DTYPE_F16 else 4


@dataclass
class Shard:
    """A holder's staged result for one plan: its range's update, W_{r+1} and momentum."""

    plan: str
    lo: int
    hi: int
    payload: bytes  # (hi - lo,) update in the broadcast dtype
    weights: np.ndarray  # (hi - lo,) f32 W_{r+1}
    momentum: np.ndarray | None  # (hi - lo,) f32, None for FedAvg


def forward_blobs(mine: list[Held], plan: partials.Plan, param_count: int, ranges: list[tuple[int, int]],
                  kind: str) -> list[bytes]:
    """Per range [lo, hi): the raw slices of `mine` concatenated (kind "raw"), or their (hi - lo,)
    int64 partial (kind "sum"), as bytes."""
    out = []
    for lo, hi in ranges:
        if kind == "raw":
            out.append(b"".join(h.payload[lo * element_bytes(h.dtype) : hi * element_bytes(h.dtype)] for h in mine))
        else:
            out.append(partials.partial_sum(mine, plan, param_count, lo, hi).astype("<i8", copy=False).tobytes())
    return out


def add_forward(total: np.ndarray, blob: bytes, entry: dict, plan: partials.Plan) -> None:
    """total (n,) int64 += the contribution forwarded in `blob` (described by its parts entry)."""
    n = total.shape[0]
    if entry["kind"] == "sum":
        total += np.frombuffer(blob, "<i8")
        return
    held, off = [], 0
    for cid, dtype in zip(entry["clients"], entry["dtypes"]):
        size = n * element_bytes(dtype)
        held.append(Held(cid, memoryview(blob)[off : off + size], dtype, 0.0, 0, 0.0))
        off += size
    partials.partial_sum(held, plan, n, out=total)


def assemble(param_count: int, weights: np.ndarray, own: Shard | None, pieces: list[tuple[int, int, bytes]],
             dtype: int) -> aggregate.ClosedRound:
    """The whole update and W_{r+1} from this process's own shard (if any) and the other ranges'
    staged updates (lo, hi, u bytes): W_{r+1} = W_r + decode(u) there, in f32 as the shard did."""
    if own is not None and own.lo == 0 and own.hi == param_count:  # one shard: nothing to copy
        return aggregate.ClosedRound(own.payload, own.weights, None, aggregate.weights_sha256(own.weights))
    width = element_bytes(dtype)
    whole = own is None and len(pieces) == 1 and pieces[0][:2] == (0, param_count)
    payload = pieces[0][2] if whole else bytearray(param_count * width)
    new_weights = np.empty(param_count, np.float32)
    if own is not None:
        payload[own.lo * width : own.hi * width] = own.payload
        new_weights[own.lo : own.hi] = own.weights
    decoded = np.empty(CHUNK, np.float32)
    for lo, hi, u in pieces:
        if not whole:
            payload[lo * width : hi * width] = u
        src = np.frombuffer(u, "<u2" if dtype == DTYPE_F16 else "<f4")
        for a in range(lo, hi, CHUNK):
            b = min(hi, a + CHUNK)
            v = aggregate.decode_into(src[a - lo : b - lo], dtype, decoded[: b - a])
            np.add(weights[a:b], v, out=new_weights[a:b])
    return aggregate.ClosedRound(payload, new_weights, None, aggregate.weights_sha256(new_weights))


class ClusterShards:
    """The holders' side of a sharded close, for ClusterRelay (its attributes: r, bulk, k, me, kept,
    leading, contributing, contributed, own_parts, prepared)."""

    def _fwd_key(self, sid: str, pid: str, src: str, dst: str) -> str:
        return self.k.s(sid, f"fwd:{pid}:{src}:{dst}")

    def _next_key(self, sid: str, pid: str, name: str) -> str:
        return self.k.s(sid, f"next:{pid}:{name}")

    def _plan_keys(self, sid: str, pid: str, procs: list[str]) -> list[str]:
        """The temporary keys of plan `pid`: the staged u, w, m, then every forward between holders."""
        return [self._next_key(sid, pid, n) for n in ("u", "w", "m")] + [
            self._fwd_key(sid, pid, a, b) for a in procs for b in procs if a != b]

    async def _contribute(self, session, round: int) -> None:
        try:
            await self._contribute_to(session, round)
        except Exception as e:  # the leader's next `plan` asks again
            log.warning("session %s round %d: this process's shard failed: %s: %s", session.session_id, round,
                        type(e).__name__, e)

    async def _contribute_to(self, session, round: int) -> None:
        sid, k = session.session_id, self.k
        raw = await self.r.get(k.s(sid, "plan"))
        if raw is None:
            return
        d = json.loads(raw)
        if d["round"] != round or not any(p == self.me for p, _, _ in d["shards"]):
            return
        # the leader repeats `plan` every second until every shard is in: a plan whose shard is
        # being made here, or is staged, is not made again (a `large` shard moves hundreds of MB)
        if self.contributing.get(sid) == raw or (
                self.contributed.get(sid) == raw and await self.r.hexists(k.s(sid, "parts"), f"done:{self.me}")):
            return
        kept = self.kept.get(sid, {})
        mine = sorted((v.held for c, v in kept.items() if v.round == round
                       and d["holders"].get(c) == [self.me, v.digest]), key=lambda h: h.client_id)
        self.contributing[sid] = raw
        try:
            if not await self._shard(session, raw, d, mine):
                return
            self.contributed[sid] = raw
        finally:
            if self.contributing.get(sid) == raw:
                del self.contributing[sid]
        if sid not in self.leading:
            await self._prepare(session, raw, d)

    async def _shard(self, session, raw: bytes, d: dict, mine: list[Held]) -> bool:
        """Forward, sum, step and stage this process's shard of the plan `raw`; False when it gave
        up (a delta of the plan is missing, or the plan changed: the leader replans). Large values
        move in worker threads through the blocking client self.bulk."""
        sid, k, cfg, me, bulk = session.session_id, self.k, session.config, self.me, self.bulk
        P, pid, parts = cfg.param_count, plan_id(raw), k.s(sid, "parts")
        plan = partials.Plan.from_dict(d)
        shards = {p: (lo, hi) for p, lo, hi in d["shards"]}
        lo, hi = shards[me]
        others = [p for p in sorted(shards) if p != me]
        expected = {p: sorted(c for c, (q, _) in d["holders"].items() if q == p) for p in shards}
        clients, dtypes = [h.client_id for h in mine], [h.dtype for h in mine]
        kind = "raw" if sum(element_bytes(t) for t in dtypes) <= RAW_MAX_BYTES else "sum"
        entry = json.dumps({"plan": pid, "clients": clients, "dtypes": dtypes, "kind": kind})
        if clients != expected[me]:  # a delta of the plan is gone here (a resync): the leader drops it
            await self.r.hset(parts, f"fwd:{me}", entry)
            return False

        def forward() -> np.ndarray:  # -> (hi - lo,) int64: this process's deltas over its own range
            blobs = forward_blobs(mine, plan, P, [shards[p] for p in others], kind)
            with bulk.pipeline(transaction=False) as pipe:
                for p, blob in zip(others, blobs):
                    pipe.set(self._fwd_key(sid, pid, me, p), blob, px=TEMP_TTL_MS)
                pipe.hset(parts, f"fwd:{me}", entry)  # after the blobs: an entry means they are in
                pipe.execute()
            del blobs
            return partials.partial_sum(mine, plan, P, lo, hi)

        total = await asyncio.to_thread(forward)
        got = await self._entries_in(sid, raw, pid, [f"fwd:{p}" for p in others])
        if got is None or any(e["clients"] != expected[p] for p, e in zip(others, got)):
            return False  # the plan changed, or a holder lost a delta (the leader drops it and plans again)
        raw_head = await self.r.get(k.s(sid, "head"))
        head = None if raw_head is None else json.loads(raw_head)
        if head is None or head["round"] != d["round"]:
            return False
        # the replica's W_r serves if it is the committed one, else its range is read from Redis
        replica = session.round == d["round"] and session.weights_sha256 == head["weights_sha256"]
        dtype, fedavg = DTYPE_BY_NAME[cfg.broadcast_dtype], cfg.aggregator == "fedavg"

        def step() -> Shard | None:
            reads = [self._fwd_key(sid, pid, p, me) for p in others]
            if not replica:
                reads.append(k.s(sid, "w"))
            if not fedavg:
                reads.append(k.s(sid, "m"))
            with bulk.pipeline(transaction=False) as pipe:
                for i, key in enumerate(reads):
                    if i < len(others):
                        pipe.get(key)
                    else:  # w or m: f32, this shard's range
                        pipe.getrange(key, lo * 4, hi * 4 - 1)
                values = pipe.execute()
            if any(b is None for b in values[: len(others)]):
                return None
            for e, blob in zip(got, values):
                add_forward(total, blob, e, plan)
            weights = session.weights[lo:hi] if replica else np.frombuffer(values[len(others)], "<f4")
            m = values[-1] if not fedavg else b""
            del values
            if weights.shape[0] != hi - lo:
                return None
            payload, new_weights, new_momentum = partials.outer_step_range(
                [total], plan, weights, cfg, np.frombuffer(m, "<f4") if m else None, dtype)
            ub = element_bytes(dtype)
            staged = [("u", lo * ub, payload), ("w", lo * 4, memoryview(new_weights).cast("B"))]
            if new_momentum is not None:
                staged.append(("m", lo * 4, memoryview(new_momentum).cast("B")))
            with bulk.pipeline(transaction=False) as pipe:
                for name, offset, value in staged:
                    key = self._next_key(sid, pid, name)
                    if lo == 0 and hi == P:  # the only shard
                        pipe.set(key, value, px=TEMP_TTL_MS)
                    elif len(value):
                        pipe.setrange(key, offset, value)
                        pipe.pexpire(key, TEMP_TTL_MS)
                pipe.hset(parts, f"done:{me}", json.dumps({"plan": pid}))
                pipe.execute()
            return Shard(pid, lo, hi, payload, new_weights, new_momentum)

        shard = await asyncio.to_thread(step)
        if shard is None:
            return False
        self.own_parts[sid] = shard
        return True

    async def _entries_in(self, sid: str, raw: bytes, pid: str, fields: list[str]) -> list[dict] | None:
        """Wait until every field of s:ID:parts holds an entry of plan `pid` -> those entries; None
        when the plan changed (the leader dropped a dead process's deltas, or committed)."""
        k, waited = self.k, asyncio.get_running_loop().time()
        while True:
            async with self.r.pipeline(transaction=False) as pipe:
                pipe.get(k.s(sid, "plan"))
                pipe.hmget(k.s(sid, "parts"), fields or ["-"])
                plan_now, entries = await pipe.execute()
            if plan_now != raw:
                return None
            got = [json.loads(e) for e in entries[: len(fields)] if e is not None]
            if len(got) == len(fields) and all(e["plan"] == pid for e in got):
                return got
            elapsed = asyncio.get_running_loop().time() - waited
            await asyncio.sleep(0.01 if elapsed < 1 else 0.05)

    async def _prepare(self, session, raw: bytes, d: dict) -> None:
        """A holder that does not lead assembles W_{r+1} and its sha256 as soon as every shard is
        staged, while the leader does the same before its commit: at `closed` it only compares the
        sha (self.prepared). Skipped when the replica's W_r is not the committed one."""
        sid, pid = session.session_id, plan_id(raw)
        own = self.own_parts.get(sid)
        if own is None or own.plan != pid or session.round != d["round"]:
            return
        if await self._entries_in(sid, raw, pid, [f"done:{p}" for p, _, _ in d["shards"]]) is None:
            return
        head = await self.r.get(self.k.s(sid, "head"))
        if head is None or json.loads(head)["weights_sha256"] != session.weights_sha256:
            return
        dtype = DTYPE_BY_NAME[session.config.broadcast_dtype]
        ranges = [(lo, hi) for _, lo, hi in d["shards"] if (lo, hi) != (own.lo, own.hi)]
        closed = await asyncio.to_thread(self._read_update, self._next_key(sid, pid, "u"), ranges, session.weights,
                                         own, dtype)
        if closed is not None and session.round == d["round"]:
            self.prepared[sid] = (pid, closed)

    def _read_update(self, key: str, ranges: list[tuple[int, int]], weights: np.ndarray, own: Shard | None,
                     dtype: int, head: str | None = None, round: int | None = None) -> aggregate.ClosedRound | None:
        """(in a worker thread) assemble() of `own` and the given ranges of the update in `key`;
        None when one is missing or short, or (with `head`) when the head's round is not `round`."""
        ranges, width = [(lo, hi) for lo, hi in ranges if hi > lo], element_bytes(dtype)
        with self.bulk.pipeline(transaction=True) as pipe:
            for lo, hi in ranges:
                pipe.getrange(key, lo * width, hi * width - 1)
            if head is not None:
                pipe.get(head)
            us = pipe.execute()
        if head is not None:
            h = us.pop()
            if h is None or json.loads(h)["round"] != round:
                return None
        if any(len(u) != (hi - lo) * width for (lo, hi), u in zip(ranges, us)):
            return None
        return assemble(weights.shape[0], weights, own, [(lo, hi, u) for (lo, hi), u in zip(ranges, us)], dtype)

    def _updated(self, sid: str, weights: np.ndarray, own: Shard | None, round: int,
                 dtype: int) -> aggregate.ClosedRound | None:
        """(in a worker thread) A replica's W_{r+1} after the commit of `round`: its own shard of
        the close if any, and W_r + decode(u) over the rest, reading only those ranges of u.
        None when the committed head is not round + 1 (this replica fell behind)."""
        P = weights.shape[0]
        ranges = [(0, P)] if own is None else [(0, own.lo), (own.hi, P)]
        return self._read_update(self.k.s(sid, "u"), ranges, weights, own, dtype, self.k.s(sid, "head"), round + 1)
