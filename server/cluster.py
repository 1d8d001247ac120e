"""Several relay processes, one deployment: sessions shared through Redis (`tabgpt relay --redis URL`).

Every process can serve every session's clients. Redis holds what must survive any one process
(key names under `redis_prefix`, `s:ID:` for a session; the layout is in
site_src/federated-protocol.md, *Several relay processes*):

    sessions, creator:ADDR      sets of session ids (all; by creating address)
    s:ID:head / :w / :m         the checkpoint header (JSON), the committed weights W_r (f32), the
                                DiLoCo momentum: the same content as a `.tgck` file
    s:ID:open                   the open round: round, attempt, phase, deadline, started_at,
                                closing, idle_since
    s:ID:roster / :conn         client id -> {name, token_hash, joined_at}; client id -> process
    s:ID:subs / :digests        the open round's accepted deltas (tokens, norm, loss, process,
                                digest) and their fingerprints; the deltas themselves stay in the
                                process that received them (their slices pass through
                                s:ID:fwd:… while their round closes)
    s:ID:plan / :parts          the closing round's plan (holders, their shards), and which holders'
                                forwards are in and shards staged
    s:ID:fwd:PLAN:P:Q           holder P's deltas over holder Q's range (raw slices or int64 sum; TTL)
    s:ID:next:PLAN:u / :w / :m  the staged update, W_{r+1} and momentum, written range by range (TTL)
    s:ID:u                      the last committed round's update payload (broadcast dtype)
    s:ID:lease, proc:P          the session's leader lease; each process's heartbeat
    pending, rate:ADDR,         the per-address quotas, counted for the whole deployment
    sockprocs, sock:P           (server/cluster_quotas.py)

Each process keeps a replica `Session` of every session it serves (config, W_r, round, phase,
its own connections only) and follows the leader's events on one pub/sub channel (`events`).
The leader (whoever holds `s:ID:lease`; any process with a replica takes it when it lapses) runs
the round timer and closes rounds: it freezes the round's accepted deltas (`closing`), writes a
plan (server/partials.py) that gives each process holding a delta a range of the parameters;
each such holder forwards its deltas over the others' ranges, sums every delta over its own range
exactly (int64), applies the outer step there and stages the result (server/cluster_shards.py);
the leader assembles W_{r+1} and its sha256 and commits the staged values and the next round in
one script (fenced by its lease's epoch), then publishes `closed`; each process then broadcasts
round_closed + UPDATE to its own clients. A process that dies takes its clients' held deltas
with it: when the leader finds a missing shard's process dead (no heartbeat), it drops those
deltas and reopens the round, and the clients, resuming elsewhere, send theirs again.

This module holds the process, its sessions, clients and submissions; cluster_keys.py the key names
and atomic scripts; cluster_rounds.py the leader's round closing and the events every process
follows; cluster_shards.py each holder's shard of a close.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import secrets
import threading
import time
from typing import Callable

import numpy as np

from . import aggregate
from .aggregate import Held, Rejected
from .connection import CLOSE_RESTART, CLOSE_SUPERSEDED, Connection
from .hub import HEAVY_SLOTS, Relay, TooManySessions
from .protocol import Join, encode, error, reject
from .quotas import Refusal
from .roster import Client, new_token, token_hash
from .session import Send, Session
from .settings import RelaySettings

log = logging.getLogger("tabgpt.relay.cluster")

from .cluster_keys import Keys, _pairs, _s, register_scripts
from .cluster_quotas import RESERVE_S, ClusterQuotas, ReservationLapsed
from .cluster_rounds import ClusterRounds
from .cluster_shards import Shard


@dataclasses.dataclass
class Kept:
    """A delta this process accepted for its client, kept until its round closes."""

    round: int
    digest: str
    held: Held
    meta: str  # its registration in s:ID:subs


class ClusterRelay(ClusterRounds, Relay):
    """A relay process of a deployment on Redis: the Relay's routes, its sessions shared."""

    def __init__(self, settings: RelaySettings, clock: Callable[[], float] | None = None):
        super().__init__(dataclasses.replace(settings, state_dir=None), clock)
        import redis as redis_sync
        import redis.asyncio as redis

        self.me = secrets.token_hex(6)
        self.k = Keys(settings.redis_prefix)
        self.r = redis.from_url(settings.redis_url)
        # a blocking client for the close's large values, used from worker threads: it moves them
        # faster than the asyncio client, and off the event loop
        self.bulk = redis_sync.Redis.from_url(settings.redis_url)
        self.scripts = register_scripts(self.r)
        self.shared_quotas = ClusterQuotas(self.r, self.k, self.me, settings)
        self.kept: dict[str, dict[str, Kept]] = {}  # session -> client -> its delta of the open round
        self.own_parts: dict[str, Shard] = {}  # session -> this process's staged shard of the closing round
        self.contributing: dict[str, bytes] = {}  # session -> the plan whose shard is being made here
        self.contributed: dict[str, bytes] = {}  # session -> the plan whose shard this process staged
        self.prepared: dict = {}  # session -> (plan id, ClosedRound) a holder assembled before `closed`
        self.committed: dict = {}  # session -> (round, ClosedRound) its leader committed, until its `closed` event
        self.leading: set[str] = set()
        self.epochs: dict[str, int] = {}  # session -> the epoch of this process's lease
        self.closing: dict[str, asyncio.Task] = {}
        self._listener: asyncio.Task | None = None
        self._beater: threading.Thread | None = None
        self._beat_stop = threading.Event()
        self._next_sweep = 0.0
        self._next_heal = 0.0
        self._bg: set[asyncio.Task] = set()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self._heartbeat()
        pubsub = self.r.pubsub()
        await pubsub.subscribe(self.k.events)
        self._listener = asyncio.create_task(self._listen(pubsub))
        log.info("relay process %s on %s", self.me, self.settings.redis_url)

    def health_extra(self) -> dict:
        return {"process": self.me, "leading": sorted(self.leading)}

    def shutdown(self) -> None:
        """Close this process's clients with 1012 (they resume on another process) and hand its
        leases back, so another process leads at once."""
        self.stopping = True
        self._beat_stop.set()
        for conn in list(self.conns.values()):
            conn.close(CLOSE_RESTART, "relay restarting")
        self._spawn(self._release())

    async def _release(self) -> None:
        for sid in list(self.leading):
            try:
                if _s(await self.r.get(self.k.s(sid, "lease")) or b"") == self.me:
                    await self.r.delete(self.k.s(sid, "lease"))
            except Exception:
                pass
        try:
            await self.r.delete(self.k.proc(self.me))
            await self.shared_quotas.forget()
        except Exception:
            pass

    async def stop(self) -> None:
        self.shutdown()
        await self._release()
        if self._listener is not None:
            self._listener.cancel()
        for task in list(self.closing.values()) + list(self._bg):
            task.cancel()
        try:
            await self.r.aclose()
            self.bulk.close()
        except Exception:
            pass

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _heartbeat(self, force: bool = False) -> None:
        """The first beat, then a thread beats every lease_s / 4 with its own connection: a process
        counts as dead only when it is gone, not while its event loop is busy (a large round)."""
        await self.r.set(self.k.proc(self.me), "1", px=int(self.settings.lease_s * 1000))
        if self._beater is None:
            self._beater = threading.Thread(target=self._beat_forever, name="relay-heartbeat", daemon=True)
            self._beater.start()

    def _beat_forever(self) -> None:
        import redis

        client = redis.Redis.from_url(self.settings.redis_url)
        key, sockets, px = self.k.proc(self.me), self.k.sock(self.me), int(self.settings.lease_s * 1000)
        while not self._beat_stop.wait(self.settings.lease_s / 4):
            try:
                with client.pipeline(transaction=False) as pipe:
                    pipe.set(key, "1", px=px)
                    pipe.pexpire(sockets, px)  # this process's open sockets count while it lives
                    pipe.execute()
            except Exception as e:  # Redis away: the next beat tries again
                log.debug("heartbeat failed: %s", e)
        client.close()

    async def tick(self) -> None:
        for sid, session in list(self.sessions.items()):
            try:
                await self._lead(session)
            except Exception as e:
                log.warning("leading session %s failed: %s: %s", sid, type(e).__name__, e)
        if time.monotonic() >= self._next_heal:
            self._next_heal = time.monotonic() + self.settings.lease_s / 2
            try:
                await self.shared_quotas.resync()
            except Exception as e:
                log.warning("writing this process's socket counts failed: %s: %s", type(e).__name__, e)
            for sid in list(self.kept):
                try:
                    await self._heal(sid)
                except Exception as e:
                    log.warning("re-registering the deltas of session %s failed: %s: %s", sid, type(e).__name__, e)
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + min(30.0, self.settings.idle_expiry_s / 4)
            await self._sweep()

    async def _heal(self, sid: str) -> None:
        """A leader that took this process for dead (its heartbeat late under load) dropped the
        deltas it holds: register them again while their clients are still connected here."""
        session, kept = self.sessions.get(sid), self.kept.get(sid, {})
        mine = sorted(c for c, v in kept.items() if session is not None and v.round == session.round
                      and (sid, c) in self.conns)
        if not mine:
            return
        k = self.k
        for cid, meta in zip(mine, await self.r.hmget(k.s(sid, "subs"), mine)):
            v = kept[cid]
            if meta is not None and json.loads(meta).get("proc") == self.me:
                continue
            if meta is not None:  # registered by another process: the client resumed there
                kept.pop(cid, None)
                continue
            n = await self.scripts["register"](keys=[k.s(sid, "open"), k.s(sid, "subs"), k.s(sid, "digests")],
                                               args=[v.round, cid, v.meta, v.digest])
            if n > 0:
                log.info("session %s: re-registered the delta of %s", sid, cid)
                if n >= session.config.quorum:
                    await self._publish({"type": "due", "sid": sid})

    async def _sweep(self) -> None:
        """Expire the idle sessions that no process serves (so none leads them), e.g. after the
        whole deployment restarted: whoever takes such a session's lease deletes it."""
        now, k = self.clock(), self.k
        for raw in await self.r.smembers(k.sessions):
            sid = _s(raw)
            if sid in self.sessions:
                continue  # its leader checks it
            state = {_s(a): _s(b) for a, b in (await self.r.hgetall(k.s(sid, "open"))).items()}
            idle_since = state.get("idle_since") or ""
            if (state.get("phase") == "idle" and idle_since and now - float(idle_since) >= self.settings.idle_expiry_s
                    and not await self._connected(sid)
                    and await self.scripts["lease"](keys=[k.s(sid, "lease"), k.s(sid, "open")],
                                                    args=[self.me, int(self.settings.lease_s * 1000)]) != 0):
                log.info("session %s expired: no client for %.0f s", sid, now - float(idle_since))
                creator = json.loads(await self.r.get(k.s(sid, "head")) or b"{}").get("creator", "")
                async with self.r.pipeline(transaction=True) as pipe:
                    pipe.delete(*k.all_of(sid))
                    pipe.srem(k.sessions, sid)
                    pipe.srem(k.creator(creator), sid)
                    await pipe.execute()

    # --- sessions: creating, finding, deleting -------------------------------------------------

    async def create(self, body: object, creator: str):
        """As Relay.create; the quotas are the deployment's: the create's place is reserved in Redis
        before its weights are made, and the session counts (and exists) only once it is stored."""
        k = self.k
        now = self.clock()
        token = secrets.token_hex(8)
        refusal = await self.shared_quotas.admit(token, creator, retry_seconds_for(self.settings))
        if refusal is not None:
            raise TooManySessions(refusal)
        stored = False
        try:
            from .protocol import build_session_config

            config = build_session_config(body, self.settings, init_seed=secrets.randbits(32))
            weights = await asyncio.to_thread(self.initial_weights, config)
            session, owner_token, join_secret = self.new_session(config, weights, creator)
            header, arrays = session.checkpoint()
            sid = session.session_id
            written = [k.s(sid, "head"), k.s(sid, "w"), k.s(sid, "open")]
            ttl = int(RESERVE_S * 1000)  # a process killed before the commit leaves nothing behind
            async with self.r.pipeline(transaction=True) as pipe:
                pipe.set(written[0], json.dumps(header), px=ttl)
                pipe.set(written[1], arrays["weights"].astype("<f4").tobytes(), px=ttl)
                pipe.hset(written[2], mapping={"round": 0, "attempt": 0, "phase": "idle", "deadline": 0,
                                               "started_at": 0, "closing": 0, "idle_since": repr(now)})
                pipe.pexpire(written[2], ttl)
                await pipe.execute()
            try:
                await self.shared_quotas.commit(token, sid, creator, written)
            except ReservationLapsed:
                await self.r.delete(*written)
                raise
            stored = True
        finally:
            if not stored:
                await self.shared_quotas.release(token)
        self.sessions[sid] = session
        return session, owner_token, join_secret

    async def open_socket(self, address: str) -> Refusal | None:
        return await self.shared_quotas.open_socket(address)

    async def close_socket(self, address: str) -> None:
        await self.shared_quotas.close_socket(address)

    async def find(self, session_id: str) -> Session | None:
        session = self.sessions.get(session_id)
        if session is not None or not isinstance(session_id, str) or len(session_id) > 128:
            return session
        return await self._load(session_id)

    async def _load(self, sid: str) -> Session | None:
        head, weights, momentum, state = await self._fetch(sid)
        if head is None:
            return None
        session = Session.from_checkpoint({**json.loads(head), "roster": []},
                                          {"weights": weights, **({"momentum": momentum} if momentum is not None else {})},
                                          self.settings.max_clients_per_session)
        session.auto_close = False
        session.history_keep = self.settings.history_keep
        self._follow(session, state)
        if sid in self.sessions:  # loaded meanwhile by another coroutine
            return self.sessions[sid]
        self.sessions[sid] = session
        return session

    async def _fetch(self, sid: str):
        k = self.k
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.get(k.s(sid, "head"))
            pipe.get(k.s(sid, "w"))
            pipe.get(k.s(sid, "m"))
            pipe.hgetall(k.s(sid, "open"))
            head, w, m, state = await pipe.execute()
        if head is None or w is None:
            return None, None, None, None
        weights = np.frombuffer(w, "<f4").astype(np.float32)
        momentum = None if m is None else np.frombuffer(m, "<f4").astype(np.float32)
        return head, weights, momentum, {_s(a): _s(b) for a, b in state.items()}

    async def _refresh(self, session: Session) -> None:
        """The replica's weights and round from Redis (it fell behind)."""
        head, weights, momentum, state = await self._fetch(session.session_id)
        if head is None:
            return
        h = json.loads(head)
        session.weights, session.momentum = weights, momentum
        session._weights_frame = session._sha = None
        session.round, session.history = h["round"], h["history"]
        self._follow(session, state)

    @staticmethod
    def _follow(session: Session, state: dict) -> None:
        """The replica's round timer as the open state says (its round must match)."""
        session.attempt = int(state.get("attempt", 0))
        session.phase = state.get("phase", "idle")
        session.deadline = float(state.get("deadline") or 0)
        session.started_at = float(state.get("started_at") or 0)

    async def remove(self, session_id: str) -> None:
        await self._delete(session_id, "deleted")

    async def _delete(self, sid: str, reason: str) -> None:
        session = self.sessions.get(sid)
        creator = session.creator if session is not None else ""
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(*self.k.all_of(sid))
            pipe.srem(self.k.sessions, sid)
            pipe.srem(self.k.creator(creator), sid)
            await pipe.execute()
        await self._publish({"type": "deleted", "sid": sid, "reason": reason})
        self._drop_replica(sid, reason)

    def _drop_replica(self, sid: str, reason: str) -> None:
        session = self.sessions.pop(sid, None)
        for held in (self.kept, self.own_parts, self.contributed, self.committed, self.prepared):
            held.pop(sid, None)
        self.leading.discard(sid)
        self.epochs.pop(sid, None)
        if session is None:
            return
        self._apply(session, session.close(reason))
        for key in [k for k in self.conns if k[0] == sid]:
            self.conns.pop(key).session_id = None
        self._free_pool(session.config.param_count)

    async def listed_sessions(self) -> list[dict]:
        """Every listed session of the deployment (from Redis), not only those this process serves."""
        ids = sorted(_s(x) for x in await self.r.smembers(self.k.sessions))
        if not ids:
            return []
        heads = await self.r.mget([self.k.s(sid, "head") for sid in ids])
        out = []
        for sid, raw in zip(ids, heads):
            if raw is None:
                continue
            h = json.loads(raw)
            config = h.get("config") or {}
            if config.get("listed"):
                out.append({"session_id": sid, "model": config.get("model"), "dataset": config.get("dataset"),
                            "round": h.get("round"), "clients": len(await self._connected(sid)),
                            "quorum": config.get("quorum")})
        return out

    async def status_of(self, session: Session) -> dict:
        status = session.status(self.clock())
        sid = session.session_id
        status["clients"] = await self._clients(sid)
        status["submissions"] = await self.r.hlen(self.k.s(sid, "subs"))
        status["leader"] = _s(await self.r.get(self.k.s(sid, "lease")) or b"")
        return status

    # --- clients -------------------------------------------------------------------------------

    async def _connected(self, sid: str) -> dict[str, str]:
        """client id -> process, of the clients connected to a live process."""
        conn = {_s(a): _s(b) for a, b in (await self.r.hgetall(self.k.s(sid, "conn"))).items()}
        procs = sorted(set(conn.values()))
        alive = dict(zip(procs, await self.r.mget([self.k.proc(p) for p in procs]))) if procs else {}
        return {c: p for c, p in conn.items() if alive.get(p) is not None}

    async def _clients(self, sid: str) -> list[dict]:
        connected = await self._connected(sid)
        roster = await self.r.hgetall(self.k.s(sid, "roster"))
        out = []
        for cid, raw in roster.items():
            cid = _s(cid)
            if cid in connected:
                c = json.loads(raw)
                out.append({"client_id": cid, "name": c["name"], "joined": int(c["joined_at"] * 1000)})
        return sorted(out, key=lambda c: c["joined"])

    async def join(self, conn: Connection, msg: Join) -> None:
        session = await self.find(msg.session_id)
        if session is None:
            self._refuse(conn, "unknown_session", "no such session")
            return
        sid, k, now = session.session_id, self.k, self.clock()
        if msg.client_token is None and session.join_hash is not None and not (
                msg.join_secret is not None and secrets.compare_digest(session.join_hash, token_hash(msg.join_secret))):
            self._refuse(conn, "bad_secret", "this session needs its join secret (the share link carries it)")
            return
        limit = self.settings.max_clients_per_session
        if msg.client_token is not None:
            wanted, cid = token_hash(msg.client_token), None
            for c, raw in (await self.r.hgetall(k.s(sid, "roster"))).items():
                if secrets.compare_digest(json.loads(raw)["token_hash"], wanted):
                    cid, name = _s(c), json.loads(raw)["name"]
                    break
            if cid is None:
                self._refuse(conn, "bad_token", "unknown client_token for this session")
                return
            token = msg.client_token
        else:
            cid, token, name = "c" + secrets.token_hex(6), new_token(), msg.name
        # the place is counted and taken in one step: joins racing on any processes never pass the limit
        admitted, elsewhere = await self.scripts["admit_client"](keys=[k.s(sid, "conn")],
                                                                 args=[cid, self.me, limit, k.proc("")])
        if not admitted:
            self._refuse(conn, "session_full", f"session has its maximum of {limit} clients")
            return
        elsewhere = _s(elsewhere)
        try:
            await self._admitted(session, conn, cid, token, name, msg.client_token is not None, elsewhere, now)
        except BaseException:  # cancelled (the socket went away) or Redis failed: give the place back
            if elsewhere != self.me:
                self._spawn(self._give_back_place(sid, cid, elsewhere))
            raise

    async def _give_back_place(self, sid: str, cid: str, elsewhere: str) -> None:
        """Undo the admission of a join that failed: conn[cid] goes back to `elsewhere` (the process
        still serving that client), or away when the join took a new place."""
        key = self.k.s(sid, "conn")
        if _s(await self.r.hget(key, cid) or b"") == self.me:
            await (self.r.hset(key, cid, elsewhere) if elsewhere else self.r.hdel(key, cid))

    async def _admitted(self, session: Session, conn: Connection, cid: str, token: str, name: str, resumed: bool,
                        elsewhere: str, now: float) -> None:
        """The rest of a join whose place is taken (conn[cid] = this process); `elsewhere`: the
        live process that held the client before, or ''."""
        sid, k, limit = session.session_id, self.k, self.settings.max_clients_per_session
        if resumed:
            await self.scripts["resume"](keys=[k.s(sid, "open"), k.s(sid, "subs"), k.s(sid, "digests")],
                                         args=[cid, self.me])
        else:
            if await self.r.hlen(k.s(sid, "roster")) >= 4 * limit:
                await self._evict(sid, await self._connected(sid), now)
            await self.r.hset(k.s(sid, "roster"), cid, json.dumps(
                {"name": name, "token_hash": token_hash(token), "joined_at": now}))
        if elsewhere and elsewhere != self.me:
            await self._publish({"type": "supersede", "sid": sid, "cid": cid, "proc": elsewhere})
        state = _pairs(await self.scripts["join_start"](
            keys=[k.s(sid, "open")], args=[repr(now), session.config.round_seconds, session.config.grace_seconds]))
        state = {a: _s(b) for a, b in state.items()}
        if int(state["round"]) != session.round:
            await self._refresh(session)
        await self._publish({"type": "clients", "sid": sid})
        # no await from here on: the connection gets its session's receive limit as soon as this
        # returns, before it can answer the join_ack queued below with a DELTA
        self._follow(session, state)
        old = self.conns.get((sid, cid))
        if old is not None and old is not conn:
            old.session_id = None
            old.send(error("superseded", "another connection resumed this client"))
            old.close(CLOSE_SUPERSEDED, "superseded")
        session.roster.clients[cid] = Client(cid, name, token_hash(token), now, connected=True)
        conn.session_id, conn.client_id = sid, cid
        self.conns[(sid, cid)] = conn
        ack = encode("join_ack", client_id=cid, client_token=token, round=session.round,
                     config=session.config.to_dict(), data_seed=session._seed(cid),
                     weights_sha256=session.weights_sha256, **session._timing(now))
        effects = [Send((cid,), ack), Send((cid,), session.weights_frame())]
        if session.phase == "grace":
            effects.append(Send((cid,), session._submit_request(now)))
        self._apply(session, effects)

    async def _evict(self, sid: str, connected: dict, now: float) -> None:
        roster = {_s(c): json.loads(raw) for c, raw in (await self.r.hgetall(self.k.s(sid, "roster"))).items()}
        idle = sorted((c for c in roster if c not in connected), key=lambda c: roster[c]["joined_at"])
        if idle:
            await self.r.hdel(self.k.s(sid, "roster"), *idle[: max(1, len(idle) // 2)])

    def disconnect(self, conn: Connection) -> None:
        session = self._session_of(conn)
        if session is None:
            return
        key = (session.session_id, conn.client_id)
        if self.conns.get(key) is conn:
            del self.conns[key]
            session.roster.clients.pop(conn.client_id, None)
            if not self.stopping:
                self._spawn(self._left(session.session_id, conn.client_id))
        conn.session_id = None

    async def _left(self, sid: str, cid: str) -> None:
        k = self.k
        if _s(await self.r.hget(k.s(sid, "conn"), cid) or b"") == self.me:
            await self.r.hdel(k.s(sid, "conn"), cid)
        if not await self._connected(sid):
            await self.r.hset(k.s(sid, "open"), "idle_since", repr(self.clock()))
        await self._publish({"type": "clients", "sid": sid})

    def loss_ping(self, conn, msg) -> None:
        session = self._session_of(conn)
        if session is None:
            conn.send(error("not_joined", "send a join message first"))
            return
        # live loss stays per process: the pings of this process's clients
        self._apply(session, session.loss_ping(conn.client_id, msg.loss, msg.tokens, self.clock()))

    # --- submissions ---------------------------------------------------------------------------

    async def submit(self, conn: Connection, frame: bytes) -> bool:
        """A DELTA frame, as Relay.submit: True when the round accepted it."""
        session = self._session_of(conn)
        if session is None:
            conn.send(reject("not_joined", "send a join message first"))
            return False
        cid, sid = conn.client_id, session.session_id
        try:
            header = aggregate.parse_delta_header(frame)
            if session.phase == "idle" or header.round != session.round:
                raise Rejected("stale_round", f"round {header.round} is not the open round {session.round}")
        except Rejected as e:
            conn.send(reject(e.reason, e.message, round=session.round))
            return False
        if self._heavy is None:
            self._heavy = asyncio.Semaphore(HEAVY_SLOTS)
        async with self._heavy:
            values = self._take_buffer(session.config.param_count)
            try:
                delta = await asyncio.to_thread(aggregate.validate_delta, frame, session.config, values)
            except Rejected as e:
                conn.send(reject(e.reason, e.message, round=session.round))
                return False
            finally:
                self._give_back(values)
        h = delta.header
        meta = json.dumps({"tokens": h.tokens, "norm": delta.norm, "loss": h.loss, "proc": self.me,
                           "digest": delta.digest})
        k = self.k
        n = await self.scripts["register"](keys=[k.s(sid, "open"), k.s(sid, "subs"), k.s(sid, "digests")],
                                           args=[h.round, cid, meta, delta.digest])
        if n < 0:
            reason, message = {-1: ("stale_round", f"round {h.round} is not open"),
                               -2: ("duplicate", f"already submitted for round {h.round}"),
                               -3: ("duplicate", "this exact delta was already submitted this round")}[n]
            conn.send(reject(reason, message, round=session.round))
            return False
        self.kept.setdefault(sid, {})[cid] = Kept(h.round, delta.digest,
                                                  Held(cid, delta.payload, h.dtype, delta.norm, h.tokens, h.loss), meta)
        conn.send(encode("submit_ack", round=h.round, submissions=n, quorum=session.config.quorum))
        if n >= session.config.quorum:
            await self._publish({"type": "due", "sid": sid})
        return True

def retry_seconds_for(settings: RelaySettings) -> int:
    return max(1, math.ceil(settings.idle_expiry_s))
