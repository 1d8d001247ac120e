"""The leader's side of a relay deployment on Redis: the round timer, closing a round (its plan,
waiting for the holders' shards of server/cluster_shards.py, the fenced commit), and following the
leader's events (server/cluster.py mixes this into ClusterRelay; every method works on its
attributes)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from pyscript_app.federated.frames import DTYPE_BY_NAME, KIND_UPDATE, FrameHeader, encode_header

from . import aggregate, partials
from .cluster_keys import _pairs, _s
from .cluster_shards import ClusterShards, element_bytes, plan_id
from .connection import CLOSE_RESTART, CLOSE_SUPERSEDED
from .protocol import encode, error
from .session import Send, Session, summarise_history

log = logging.getLogger("tabgpt.relay.cluster")


class ClusterRounds(ClusterShards):
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
        procs = sorted({m["proc"] for m in metas.values()})
        shards = [[p, lo, hi] for p, (lo, hi) in zip(procs, partials.shard_ranges(cfg.param_count, len(procs)))]
        plan_json = json.dumps({**plan.to_dict(), "holders": holders, "shards": shards}, sort_keys=True).encode()
        pid = plan_id(plan_json)
        await self.r.set(k.s(sid, "plan"), plan_json)
        await self._publish({"type": "plan", "sid": sid, "round": round})
        if self.me in procs:
            self._spawn(self._contribute(session, round))  # no need to wait for its own event
        waited, nudged = time.monotonic(), time.monotonic()
        while True:
            async with self.r.pipeline(transaction=False) as pipe:
                pipe.get(k.s(sid, "plan"))
                pipe.hgetall(k.s(sid, "parts"))
                plan_now, entries = await pipe.execute()
            if plan_now != plan_json:
                return  # gone (a restarted Redis without it): the next tick plans the close again
            entries = {_s(a): json.loads(b) for a, b in entries.items()}
            fwd = {a[4:]: e for a, e in entries.items() if a.startswith("fwd:") and e["plan"] == pid}
            done = {a[5:] for a, e in entries.items() if a.startswith("done:") and e["plan"] == pid}
            # a live holder that lost a delta (a resync) says so in its entry; a dead one says nothing
            lost = sorted(c for c, m in metas.items() if m["proc"] in fwd and c not in fwd[m["proc"]]["clients"])
            missing = [p for p in procs if p not in done]
            if not missing and not lost:
                break
            if missing and not lost:
                alive = await self.r.mget([k.proc(p) for p in missing])
                dead = {p for p, a in zip(missing, alive) if a is None}
                # their deltas died with them: drop them, the round stays open for their resumes
                lost = sorted(c for c, m in metas.items() if m["proc"] in dead)
                if dead:
                    log.warning("session %s round %d: process(es) %s gone, dropping %d delta(s)", sid, round,
                                ",".join(sorted(dead)), len(lost))
            if lost:
                await self.scripts["drop"](keys=[k.s(sid, n) for n in ("open", "subs", "digests", "plan", "parts")],
                                           args=[round, *lost])
                await self.r.unlink(*self._plan_keys(sid, pid, procs))
                return
            if _s(await self.r.get(k.s(sid, "lease")) or b"") != self.me:
                return  # no longer the leader: the next one finishes this close
            if time.monotonic() - nudged > 1.0:  # a pub/sub message is not guaranteed: say it again
                nudged = time.monotonic()
                await self._publish({"type": "plan", "sid": sid, "round": round})
            await asyncio.sleep(0.01 if time.monotonic() - waited < 1 else 0.05)
        head = await self.r.get(k.s(sid, "head"))
        if session.round == round and session.weights_sha256 == json.loads(head)["weights_sha256"]:
            weights = session.weights  # the replica holds W_r as committed
        else:
            head, weights, _, _ = await self._fetch(sid)
        while self.contributing.get(sid) == plan_json:  # its own shard is staged: wait for it in memory
            await asyncio.sleep(0.005)
        own = self.own_parts.get(sid)
        own = own if own is not None and own.plan == pid else None
        dtype = DTYPE_BY_NAME[cfg.broadcast_dtype]
        width = element_bytes(dtype)
        ranges = [(lo, hi) for _, lo, hi in shards if own is None or (lo, hi) != (own.lo, own.hi)]
        closed = await asyncio.to_thread(self._read_update, self._next_key(sid, pid, "u"), ranges, weights, own, dtype)
        if closed is None:
            log.warning("session %s round %d: a staged update is missing; computing it again", sid, round)
            await self.r.delete(k.s(sid, "parts"))
            return
        entry = {"round": round, "loss": plan.mean_loss, "contributors": len(metas), "tokens": plan.tokens}
        h = json.loads(head)
        h.update(round=round + 1, history=summarise_history(h["history"] + [entry], self.settings.history_keep),
                 weights_sha256=closed.weights_sha256)
        now = self.clock()
        anyone = bool(await self._connected(sid))
        nxt = {"round": str(round + 1), "attempt": "0", "closing": "0", "started_at": repr(now),
               "phase": ("training" if cfg.grace_seconds > 0 else "grace") if anyone else "idle",
               "deadline": repr(now + cfg.round_seconds) if anyone else "0", "idle_since": "" if anyone else repr(now)}
        ok = await self.scripts["commit"](
            keys=[k.s(sid, n) for n in ("open", "head", "u", "w", "m")]
            + [self._next_key(sid, pid, n) for n in ("u", "w", "m")]
            + [k.s(sid, n) for n in ("subs", "digests", "plan", "parts")] + self._plan_keys(sid, pid, procs)[3:],
            args=[str(self.epochs.get(sid, "")), round, json.dumps(h), cfg.param_count * width, cfg.param_count * 4,
                  "0" if cfg.aggregator == "fedavg" else "1", *[x for kv in nxt.items() for x in kv]])
        if ok == -1:
            log.warning("session %s round %d: a staged value is missing; computing it again", sid, round)
            await self.r.delete(k.s(sid, "parts"))
            return
        if ok != 1:
            log.warning("session %s round %d: lost the lease before committing; the next leader closes it", sid, round)
            return
        self.committed[sid] = (round, closed)  # for this process's own `closed` event
        await self._publish({"type": "closed", "sid": sid, "round": round, "entry": entry, "plan": pid,
                             "sha": closed.weights_sha256, "state": nxt})

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
        prepared = self.prepared.pop(sid, None)
        if mine is not None and mine[0] == round and mine[1].weights_sha256 == event["sha"]:
            # the leader committed this round itself: it holds the update and W_{r+1} already
            closed = aggregate.ClosedRound(mine[1].payload, mine[1].weights, None, event["sha"])
        elif prepared is not None and prepared[0] == event.get("plan") and prepared[1].weights_sha256 == event["sha"]:
            closed = prepared[1]  # assembled by _prepare from this replica's W_r: the same sha, the same W_{r+1}
        else:
            # W_{r+1} = W_r + decode(u) in f32, as every client computes it: no weights download;
            # this process's own shard of the close is reused, the other ranges of u are read
            own = self.own_parts.get(sid)
            own = own if own is not None and own.plan == event.get("plan") else None
            closed = await asyncio.to_thread(self._updated, sid, session.weights, own, round,
                                             DTYPE_BY_NAME[session.config.broadcast_dtype])
            if closed is None:
                await self._resync(session)
                return
            if closed.weights_sha256 != event["sha"]:
                await self._resync(session)  # this replica's W_r was not the committed one
                return
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

