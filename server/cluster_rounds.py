"""The leader's side of a relay deployment on Redis: the round timer, closing a round from the
processes' integer partials, the fenced commit, and following the leader's events (server/cluster.py
mixes this into ClusterRelay; every method works on its attributes)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import numpy as np

from pyscript_app.federated.frames import DTYPE_BY_NAME, DTYPE_F16, KIND_UPDATE, FrameHeader, encode_header

from . import aggregate, partials
from .cluster_keys import _pairs, _s
from .connection import CLOSE_RESTART, CLOSE_SUPERSEDED
from .protocol import encode, error
from .session import Send, Session, summarise_history

log = logging.getLogger("tabgpt.relay.cluster")


class ClusterRounds:
    """Round closing and leader events for ClusterRelay."""

    # --- the leader ----------------------------------------------------------------------------

    async def _lead(self, session: Session) -> None:
        sid, k, s = session.session_id, self.k, self.settings
        got = await self.scripts["lease"](keys=[k.s(sid, "lease"), k.s(sid, "open")],
                                          args=[self.me, int(s.lease_s * 1000)])
        if got == 0 or (got == -1 and sid not in self.epochs):
            self.leading.discard(sid)
            return
        if got > 0:  # taken now: a new epoch, which fences off any earlier leader's commit
            self.epochs[sid] = got
            log.info("process %s leads session %s (epoch %d)", self.me, sid, got)
        self.leading.add(sid)
        state = {_s(a): _s(b) for a, b in (await self.r.hgetall(k.s(sid, "open"))).items()}
        if not state:  # deleted
            self._drop_replica(sid, "deleted")
            return
        task = self.closing.get(sid)
        if task is not None and not task.done():
            return
        round, phase, now = int(state["round"]), state["phase"], self.clock()
        deadline, cfg = float(state["deadline"] or 0), session.config
        if state.get("closing") == "1":
            self._close_soon(session, round)
            return
        if phase == "idle":
            idle_since = float(state.get("idle_since") or now)
            if now - idle_since >= s.idle_expiry_s and not await self._connected(sid):
                log.info("session %s expired: no client for %.0f s", sid, now - idle_since)
                await self._delete(sid, "expired")
            return
        if phase == "training" and now >= deadline - cfg.grace_seconds:
            if await self.scripts["set_phase"](keys=[k.s(sid, "open"), k.s(sid, "subs")],
                                               args=[round, "training", "grace"]):
                await self._publish({"type": "phase", "sid": sid, "state": {**state, "phase": "grace"}})
                phase = "grace"
        n = await self.r.hlen(k.s(sid, "subs"))
        if n >= cfg.quorum or (phase == "grace" and now >= deadline and n >= 1):
            self._close_soon(session, round)
        elif phase == "grace" and now >= deadline:
            anyone = bool(await self._connected(sid))
            nxt = {"attempt": str(int(state["attempt"]) + 1), "phase": "idle", "started_at": repr(now),
                   "deadline": "0", "idle_since": state.get("idle_since") or repr(now)}
            if anyone:
                nxt.update(phase="training" if cfg.grace_seconds > 0 else "grace",
                           deadline=repr(now + cfg.round_seconds), idle_since="")
            if await self.scripts["restart"](keys=[k.s(sid, "open"), k.s(sid, "subs")],
                                             args=[round, nxt["attempt"], nxt["phase"], nxt["started_at"],
                                                   nxt["deadline"], nxt["idle_since"]]):
                await self._publish({"type": "restart", "sid": sid, "state": {**state, **nxt}})

    def _close_soon(self, session: Session, round: int) -> None:
        sid = session.session_id
        task = self.closing.get(sid)
        if task is None or task.done():
            self.closing[sid] = asyncio.get_running_loop().create_task(self._close(session, round))

    async def _close(self, session: Session, round: int) -> None:
        try:
            await self._close_round(session, round)
        except Exception:
            log.exception("closing round %d of session %s failed", round, session.session_id)

    async def _close_round(self, session: Session, round: int) -> None:
        sid, k, cfg = session.session_id, self.k, session.config
        subs = await self.scripts["close_begin"](keys=[k.s(sid, "open"), k.s(sid, "subs")], args=[round])
        if subs is None:
            return
        metas = {c: json.loads(raw) for c, raw in _pairs(subs).items()}
        if not metas:  # every delta was dropped: the round stays open
            await self.r.hset(k.s(sid, "open"), "closing", "0")
            return
        plan = partials.plan_round(round, [partials.Contribution(c, m["tokens"], m["norm"], m["loss"])
                                           for c, m in metas.items()], cfg.robust)
        holders = {c: [m["proc"], m["digest"]] for c, m in metas.items()}
        plan_json = json.dumps({**plan.to_dict(), "holders": holders}).encode()
        await self.r.set(k.s(sid, "plan"), plan_json)
        await self._publish({"type": "plan", "sid": sid, "round": round})
        waited, nudged = time.monotonic(), time.monotonic()
        while True:
            parts = {_s(p): json.loads(raw) for p, raw in (await self.r.hgetall(k.s(sid, "parts"))).items()}
            covered = {c for p in parts.values() if p["round"] == round for c in p["clients"]}
            missing = set(metas) - covered
            if not missing:
                break
            procs = sorted({metas[c]["proc"] for c in missing})
            alive = await self.r.mget([k.proc(p) for p in procs])
            dead = {p for p, a in zip(procs, alive) if a is None}
            if dead:  # their deltas died with them: drop them, the round stays open for their resumes
                lost = sorted(c for c in missing if metas[c]["proc"] in dead)
                log.warning("session %s round %d: process(es) %s gone, dropping %d delta(s)", sid, round,
                            ",".join(sorted(dead)), len(lost))
                await self.scripts["drop"](keys=[k.s(sid, n) for n in ("open", "subs", "digests", "plan", "parts")],
                                           args=[round, *lost])
                return
            if _s(await self.r.get(k.s(sid, "lease")) or b"") != self.me:
                return  # no longer the leader: the next one finishes this close
            if time.monotonic() - nudged > 1.0:  # a pub/sub message is not guaranteed: say it again
                nudged = time.monotonic()
                await self._publish({"type": "plan", "sid": sid, "round": round})
            await asyncio.sleep(0.01 if time.monotonic() - waited < 1 else 0.05)
        owners = sorted(p for p, v in parts.items() if v["round"] == round and v["clients"])
        own = self.own_parts.get(sid)
        sums = []
        if self.me in owners and own is not None and own[0] == plan_json:
            sums.append(own[1])
            owners.remove(self.me)
        blobs = await self.r.mget([k.s(sid, f"part:{p}") for p in owners]) if owners else []
        if any(b is None for b in blobs):
            log.warning("session %s round %d: a partial is missing; asking again", sid, round)
            await self.r.hdel(k.s(sid, "parts"), *[p for p, b in zip(owners, blobs) if b is None])
            return
        sums += [np.frombuffer(b, "<i8") for b in blobs]
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.get(k.s(sid, "head"))
            pipe.get(k.s(sid, "m"))
            head, m = await pipe.execute()
        momentum = None if m is None else np.frombuffer(m, "<f4").astype(np.float32)
        if session.round == round and session.weights_sha256 == json.loads(head)["weights_sha256"]:
            weights = session.weights  # the replica holds W_r as committed
        else:
            head, weights, momentum, _ = await self._fetch(sid)
        dtype = DTYPE_BY_NAME[cfg.broadcast_dtype]
        closed = await asyncio.to_thread(partials.combine, sums, plan, weights, cfg, momentum, dtype)
        entry = {"round": round, "loss": plan.mean_loss, "contributors": len(metas), "tokens": plan.tokens}
        h = json.loads(head)
        h.update(round=round + 1, history=summarise_history(h["history"] + [entry], self.settings.history_keep),
                 weights_sha256=closed.weights_sha256)
        now = self.clock()
        anyone = bool(await self._connected(sid))
        nxt = {"round": str(round + 1), "attempt": "0", "closing": "0", "started_at": repr(now),
               "phase": ("training" if cfg.grace_seconds > 0 else "grace") if anyone else "idle",
               "deadline": repr(now + cfg.round_seconds) if anyone else "0", "idle_since": "" if anyone else repr(now)}
        ok = await self._commit(sid, round, h, closed, nxt)
        if not ok:
            log.warning("session %s round %d: lost the lease before committing; the next leader closes it", sid, round)
            return
        self.committed[sid] = (round, closed)  # for this process's own `closed` event
        await self._publish({"type": "closed", "sid": sid, "round": round, "entry": entry,
                             "sha": closed.weights_sha256, "state": nxt})

    async def _commit(self, sid: str, round: int, head: dict, closed, nxt: dict) -> bool:
        """W_{r+1}, its header, the momentum, the update and the next round, in one transaction that
        runs only while this process's lease epoch is the session's and round r is open (WATCH of
        the open state: a new leader bumps the epoch, which aborts it; renewing a lease does not). Large values go through MULTI, not a script,
        which would copy them into Lua strings (seconds for `large`)."""
        import redis

        k = self.k
        async with self.r.pipeline(transaction=True) as pipe:
            await pipe.watch(k.s(sid, "open"))
            epoch, open_round = await pipe.hmget(k.s(sid, "open"), ["epoch", "round"])
            if _s(epoch or b"") != str(self.epochs.get(sid)) or _s(open_round or b"") != str(round):
                await pipe.unwatch()
                return False
            pipe.multi()
            pipe.set(k.s(sid, "head"), json.dumps(head))
            pipe.set(k.s(sid, "w"), memoryview(closed.weights.astype("<f4", copy=False)).cast("B"))
            if closed.momentum is None:
                pipe.delete(k.s(sid, "m"))
            else:
                pipe.set(k.s(sid, "m"), memoryview(closed.momentum.astype("<f4", copy=False)).cast("B"))
            pipe.set(k.s(sid, "u"), closed.payload)
            pipe.delete(k.s(sid, "subs"), k.s(sid, "digests"), k.s(sid, "plan"), k.s(sid, "parts"))
            pipe.hset(k.s(sid, "open"), mapping=nxt)
            try:
                await pipe.execute()
            except redis.WatchError:
                return False
        return True

    # --- events from the leaders ---------------------------------------------------------------

    async def _publish(self, event: dict) -> None:
        await self.r.publish(self.k.events, json.dumps(event))

    async def _listen(self, pubsub) -> None:
        """Handle the leaders' events, one at a time; subscribe again after a lost connection (a
        restarted Redis): events published meanwhile are lost, and a replica that missed a
        round resynchronises at the next `closed` (see _resync)."""
        while True:
            try:
                if pubsub is None:
                    pubsub = self.r.pubsub()
                    await pubsub.subscribe(self.k.events)
                    log.info("subscribed to %s again", self.k.events)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    event = json.loads(message["data"])
                    try:
                        await self._on_event(event)
                    except Exception:
                        if self.stopping:  # stop() closed the connections: redis-py may raise that, not the cancel
                            return
                        log.exception("handling %s of session %s failed", event.get("type"), event.get("sid"))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if self.stopping:
                    return
                log.warning("the event subscription failed (%s: %s); subscribing again", type(e).__name__, e)
                pubsub = None
                await asyncio.sleep(0.5)

    async def _on_event(self, event: dict) -> None:
        sid, kind = event.get("sid"), event.get("type")
        session = self.sessions.get(sid)
        if session is None:
            return
        now = self.clock()
        if kind == "deleted":
            self._drop_replica(sid, event.get("reason", "deleted"))
        elif kind == "clients":
            clients = await self._clients(sid)
            self._apply(session, [Send(session.roster.connected_ids(), encode("clients_changed", clients=clients),
                                       latest="clients_changed")])
        elif kind == "supersede" and event.get("proc") == self.me:
            conn = self.conns.pop((sid, event["cid"]), None)
            if conn is not None:
                session.roster.clients.pop(event["cid"], None)
                conn.session_id = None
                conn.send(error("superseded", "another connection resumed this client"))
                conn.close(CLOSE_SUPERSEDED, "superseded")
        elif kind == "due" and sid in self.leading:
            await self._lead(session)
        elif kind == "plan":
            self._spawn(self._contribute(session, event["round"]))
        elif kind == "phase" and int(event["state"]["round"]) == session.round:
            self._follow(session, event["state"])
            if session.phase == "grace":
                self._apply(session, [Send(session.roster.connected_ids(), session._submit_request(now))])
        elif kind == "restart" and int(event["state"]["round"]) == session.round:
            self._follow(session, event["state"])
            self.kept.pop(sid, None)
            if session.phase != "idle":
                self._apply(session, session._round_started(now))
        elif kind == "closed":
            await self._on_closed(session, event)

    async def _contribute(self, session: Session, round: int) -> None:
        sid, k = session.session_id, self.k
        raw = await self.r.get(k.s(sid, "plan"))
        if raw is None:
            return
        d = json.loads(raw)
        if d["round"] != round:
            return
        # the leader repeats `plan` every second until every partial is in: a plan whose partial
        # is being made here, or is stored, is not made again (a `large` partial is 211 MB)
        if self.contributing.get(sid) == raw or (
                self.contributed.get(sid) == raw and await self.r.hexists(k.s(sid, "parts"), self.me)):
            return
        plan = partials.Plan.from_dict(d)
        kept = self.kept.get(sid, {})
        mine = [v.held for c, v in kept.items() if v.round == round and d["holders"].get(c) == [self.me, v.digest]]
        if not mine:
            return
        self.contributing[sid] = raw
        try:
            total = await asyncio.to_thread(partials.partial_sum, mine, plan, session.config.param_count)
            entry = json.dumps({"round": round, "clients": sorted(h.client_id for h in mine)})
            if sid in self.leading:  # the leader adds its own partial from memory
                self.own_parts[sid] = (raw, total)
                await self.r.hset(k.s(sid, "parts"), self.me, entry)
            else:
                async with self.r.pipeline(transaction=True) as pipe:  # (P,) int64 as it is: no copy
                    pipe.set(k.s(sid, f"part:{self.me}"), memoryview(total.astype("<i8", copy=False)).cast("B"),
                             px=600_000)
                    pipe.hset(k.s(sid, "parts"), self.me, entry)
                    await pipe.execute()
            self.contributed[sid] = raw
        finally:
            if self.contributing.get(sid) == raw:
                del self.contributing[sid]

    async def _resync(self, session: Session) -> None:
        """The replica missed a committed round (an event lost while Redis restarted): load the
        committed state, and close its clients with 1012 so they resume and get the current
        weights (the protocol has no other way to hand a client new weights mid-session)."""
        log.warning("session %s: this process missed a round; its clients resume", session.session_id)
        await self._refresh(session)
        self.kept.pop(session.session_id, None)
        for key in [k for k in self.conns if k[0] == session.session_id]:
            self.conns[key].close(CLOSE_RESTART, "resync")

    async def _on_closed(self, session: Session, event: dict) -> None:
        sid, round = session.session_id, event["round"]
        if round < session.round:
            return
        if round > session.round:
            await self._resync(session)  # it missed a round
            return
        mine = self.committed.pop(sid, None)
        if mine is not None and mine[0] == round and mine[1].weights_sha256 == event["sha"]:
            # the leader committed this round itself: it holds the update and W_{r+1} already
            closed = aggregate.ClosedRound(mine[1].payload, mine[1].weights, None, event["sha"])
        else:
            async with self.r.pipeline(transaction=True) as pipe:
                pipe.get(self.k.s(sid, "u"))
                pipe.get(self.k.s(sid, "head"))
                u, head = await pipe.execute()
            if head is None or json.loads(head)["round"] != round + 1:
                await self._resync(session)
                return
            # W_{r+1} = W_r + decode(u) in f32, as every client computes it: no weights download
            dtype = DTYPE_BY_NAME[session.config.broadcast_dtype]
            weights = await asyncio.to_thread(_apply_update, session.weights, u, dtype)
            if aggregate.weights_sha256(weights) != event["sha"]:
                await self._resync(session)  # this replica's W_r was not the committed one
                return
            closed = aggregate.ClosedRound(u, weights, None, event["sha"])
        entry = event["entry"]
        self.kept.pop(sid, None)
        self.own_parts.pop(sid, None)
        self.contributed.pop(sid, None)
        session.weights, session.momentum = closed.weights, None  # the leader reads the momentum from Redis
        session._weights_frame, session._sha = None, closed.weights_sha256
        session.history = summarise_history(session.history + [entry], session.history_keep)
        session.round = round + 1
        session._reset_round()
        self._follow(session, event["state"])
        now = self.clock()
        update = encode_header(FrameHeader(KIND_UPDATE, DTYPE_BY_NAME[session.config.broadcast_dtype], round,
                                           session.config.param_count, tokens=min(entry["tokens"], 0xFFFFFFFF),
                                           loss=entry["loss"]))
        everyone = session.roster.connected_ids()
        effects = [Send(everyone, encode("round_closed", **entry, next_round=session.round,
                                         weights_sha256=session.weights_sha256)),
                   Send(everyone, update + closed.payload)]
        if session.phase != "idle":
            effects += session._round_started(now)
        self._apply(session, effects)


def _apply_update(weights: np.ndarray, payload: bytes, dtype: int) -> np.ndarray:
    """W + decode(u) in f32 (server/aggregate.apply_update), decoding f16 through the exact table."""
    raw = np.frombuffer(payload, "<u2" if dtype == DTYPE_F16 else "<f4")
    decoded = aggregate.F16_TO_F32[raw] if dtype == DTYPE_F16 else raw.astype(np.float32)
    return aggregate.apply_update(weights, decoded)
