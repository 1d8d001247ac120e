"""The relay's live state: sessions, the connections bound to their clients, the round timer.

Every session call returns effects; `_apply` first writes a checkpoint when a round committed
(so a broadcast never announces weights that a restart could lose), then queues the frames.

The heavy work never runs on the event loop (a `large` delta is 53 MB): validating a delta,
adding it to the running sum, and closing a round (outer step, sha256, checkpoint) run in worker
threads (numpy and hashlib release the GIL), so the loop keeps receiving frames, answering pings
and broadcasting while they run. Per session, one lock orders accepting a delta and the close; at most
HEAVY_SLOTS validations run at once relay-wide, which bounds the (P,) float32 buffers they decode
into. A submission gives its slot back before it waits for its session's lock, so a session whose
close takes long delays only its own submissions.
An accepted delta is kept as the frame it came in (2 bytes per parameter for f16) until its round
closes: the robust aggregate needs the round's median norm before it can weigh any delta.

Per client address (server/quotas.py) the relay caps live sessions created, creates per minute
and open sockets; a session with no connected client for `idle_expiry_s` is deleted by the timer
(its `idle_since` is checkpointed, so the idle time runs on across a restart).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from typing import Callable

import anyio
import numpy as np

from pyscript_app.config import ModelConfig
from pyscript_app.federated.frames import HEADER_SIZE
from pyscript_app.reference.init import init_params

from . import aggregate
from .aggregate import Rejected
from .connection import CLOSE_POLICY, CLOSE_RESTART, CLOSE_SUPERSEDED, Connection
from .quotas import Quotas, Refusal, retry_seconds
from .protocol import (Join, LossPing, SessionConfig, build_session_config, error, reject,
                       stored_session_config)
from .roster import JoinRefused
from .session import Close, Effect, Send, Session, summarise_history
from .settings import RelaySettings
from .storage import CheckpointStore

log = logging.getLogger("tabgpt.relay")
HEAVY_SLOTS = 2  # submissions validated / aggregated at once (the relay's machine has 2 cores)


class TooManySessions(Exception):
    """A refused create: 429 with `refusal.reason` and `Retry-After: refusal.retry_after`."""

    def __init__(self, refusal: Refusal):
        super().__init__(refusal.message)
        self.refusal = refusal


class Relay:
    def __init__(self, settings: RelaySettings, clock: Callable[[], float] | None = None):
        self.settings = settings
        self.clock = clock or time.time
        self.sessions: dict[str, Session] = {}
        self.conns: dict[tuple[str, str], Connection] = {}
        self.store = CheckpointStore(settings.state_dir) if settings.state_dir else None
        self.locks: dict[str, asyncio.Lock] = {}  # per session: accepting a delta and closing, one at a time
        self._heavy: asyncio.Semaphore | None = None  # created on the running loop
        self._buffers: dict[int, list[np.ndarray]] = {}  # free (P,) float32 buffers for decoded deltas
        self._tasks: set[asyncio.Task] = set()  # scheduled closes (referenced until done)
        self._retry: dict[str, tuple[float, int]] = {}  # session id -> (next close attempt, failures)
        self.quotas = Quotas(settings)
        self.stopping = False  # set by shutdown: clients dropped from now on are expected back

    # --- lifecycle -----------------------------------------------------------------------------

    def load(self) -> None:
        """Reload the sessions checkpointed in state_dir (rounds resume when a client joins)."""
        if self.store is None:
            return
        for header, arrays in self.store.load_all():
            try:
                header = {**header, "config": stored_session_config(header.get("config"), self.settings).to_dict()}
                session = Session.from_checkpoint(header, arrays, self.settings.max_clients_per_session)
                session.auto_close = False
                session.roster.resume_window_s = self.settings.resume_window_s
                session.history_keep = self.settings.history_keep
                session.history = summarise_history(session.history, session.history_keep)
                session.roster.restarted(self.clock())
                if session.idle_since is None:  # clients were connected when it was saved: they may come back
                    session.idle_since = self.clock()
            except Exception as e:  # a file that decodes but does not make a session: skipped, logged
                log.error("skipping checkpoint of %s: %s: %s", str(header.get("session_id"))[:64], type(e).__name__, e)
                continue
            if self._expired(session, self.clock()):
                log.info("session %s expired while the relay was down (idle since %.0f); deleted",
                         session.session_id, session.idle_since)
                self.store.delete(session.session_id)
                continue
            if len(self.sessions) >= self.settings.max_sessions:
                log.error("skipping checkpoint of %s: the relay holds its maximum of sessions", session.session_id)
                continue
            self.sessions[session.session_id] = session
        log.info("relay loaded %d session(s)", len(self.sessions))

    def shutdown(self) -> None:
        """Final checkpoint of every session, then close every client with 1012 (restarting).
        A session with a client connected now is saved as not idle: its idle time starts with the
        restart, since its clients will come back."""
        self.stopping = True
        for session in self.sessions.values():
            try:
                self._save(session)
            except Exception:
                log.exception("final checkpoint of session %s failed", session.session_id)
        for conn in list(self.conns.values()):
            conn.close(CLOSE_RESTART, "relay restarting")

    async def run_ticker(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # never let one bad tick stop every session's timer
                log.exception("round timer tick failed")
            await asyncio.sleep(self.settings.tick_interval_s)

    async def tick(self) -> None:
        now = self.clock()
        for session in list(self.sessions.values()):
            if self._expired(session, now):
                self.expire(session, now)
                continue
            if self._lock(session).locked():
                continue  # a submission or a close is running; its holder re-checks the round
            try:
                self._apply(session, session.tick(now))
                await self._close_if_due(session)
            except Exception:  # one session's failure is logged; the others' timers go on
                log.exception("timer of session %s failed", session.session_id)

    # --- what the routes call (server/cluster.py's ClusterRelay overrides these) ----------------

    async def start(self) -> None:
        self.load()

    async def stop(self) -> None:
        self.shutdown()

    async def find(self, session_id: str) -> Session | None:
        return self.sessions.get(session_id)

    async def create(self, body: object, creator: str) -> tuple[Session, str, str | None]:
        """(session, owner token, join secret or None), stored and published. Raises InvalidRequest,
        TooManySessions, OSError (it could not be stored: then it does not exist)."""
        config = self.new_config(body, creator)
        weights = await anyio.to_thread.run_sync(self.initial_weights, config)
        session, owner_token, join_secret = self.new_session(config, weights, creator)
        # saved before it is published: a session that cannot be stored never exists
        await anyio.to_thread.run_sync(self.save_new, session)
        self.publish(session)
        return session, owner_token, join_secret

    async def listed_sessions(self) -> list[dict]:
        """The sessions created with `listed: true`, for GET /api/sessions."""
        return [{"session_id": s.session_id, "model": s.config.model, "dataset": s.config.dataset, "round": s.round,
                 "clients": len(s.roster.connected_ids()), "quorum": s.config.quorum}
                for s in self.sessions.values() if s.config.listed]

    def health_extra(self) -> dict:
        return {}

    async def status_of(self, session: Session) -> dict:
        return session.status(self.clock())

    async def remove(self, session_id: str) -> None:
        self.delete_session(session_id)

    async def open_socket(self, address: str) -> Refusal | None:
        """Count a WebSocket of `address`, or refuse it over `max_sockets_per_address`."""
        return self.quotas.open_socket(address)

    async def close_socket(self, address: str) -> None:
        self.quotas.close_socket(address)

    # --- REST ----------------------------------------------------------------------------------

    def new_config(self, body: object, creator: str = "") -> SessionConfig:
        """Check the quotas of `creator` (an address key), then the body. Raises TooManySessions."""
        self._check_capacity(creator)
        refusal = self.quotas.check_create(creator, self.clock())
        if refusal is not None:
            raise TooManySessions(refusal)
        return build_session_config(body, self.settings, init_seed=secrets.randbits(32))

    def _check_capacity(self, creator: str) -> None:
        now, limit = self.clock(), self.settings.max_sessions_per_address
        if len(self.sessions) >= self.settings.max_sessions:
            raise TooManySessions(Refusal("max_sessions", f"relay has its maximum of {self.settings.max_sessions} "
                                          "sessions", self._retry_after(self.sessions.values(), now)))
        mine = [s for s in self.sessions.values() if s.creator == creator]
        if len(mine) >= limit:
            raise TooManySessions(Refusal("sessions_per_address", f"at most {limit} live sessions per address; "
                                          "delete one or let one expire", self._retry_after(mine, now)))

    def _retry_after(self, sessions, now: float) -> int:
        """Seconds until the first of `sessions` would expire if nobody joins it (idle_expiry_s if none is idle)."""
        ends = [s.idle_since + self.settings.idle_expiry_s for s in sessions if s.idle_since is not None]
        return retry_seconds(min(ends) - now if ends else self.settings.idle_expiry_s)

    def _expired(self, session: Session, now: float) -> bool:
        return session.idle_since is not None and now - session.idle_since >= self.settings.idle_expiry_s

    def expire(self, session: Session, now: float) -> None:
        """No client for idle_expiry_s: the session and its checkpoint are deleted."""
        log.info("session %s expired: no client for %.0f s", session.session_id, now - session.idle_since)
        self.delete_session(session.session_id, reason="expired")

    @staticmethod
    def initial_weights(config: SessionConfig) -> np.ndarray:
        return init_params(ModelConfig.from_dict(config.model_config), config.init_seed)

    def new_session(self, config: SessionConfig, weights: np.ndarray,
                    creator: str = "") -> tuple[Session, str, str | None]:
        """(session, owner token, join secret or None), not yet published: `save_new` it (off the
        loop), then `publish` it."""
        session, owner_token = Session.create(config, weights, self.settings.max_clients_per_session, self.clock(),
                                              creator)
        session.auto_close = False
        session.roster.resume_window_s = self.settings.resume_window_s
        session.history_keep = self.settings.history_keep
        join_secret = session.new_join_secret() if config.require_join_secret else None
        return session, owner_token, join_secret

    def save_new(self, session: Session) -> None:
        """The first checkpoint, before anyone can see the session (raises OSError on a full disk)."""
        if self.store is not None:
            header, arrays = session.checkpoint()
            self.store.save(session.session_id, header, arrays)
        session.dirty = False

    def publish(self, session: Session) -> None:
        try:  # re-checked: the weights were made off the loop, meanwhile other creates may have landed
            self._check_capacity(session.creator)
        except TooManySessions:
            if self.store is not None:
                self.store.delete(session.session_id)
            raise
        self.sessions[session.session_id] = session

    def add_session(self, config: SessionConfig, weights: np.ndarray) -> tuple[Session, str]:
        """new_session + save_new + publish, all on the caller's thread (tests)."""
        session, owner_token, _ = self.new_session(config, weights)
        self.save_new(session)
        self.publish(session)
        return session, owner_token

    def delete_session(self, session_id: str, reason: str = "deleted") -> None:
        session = self.sessions.pop(session_id)
        self.locks.pop(session_id, None)
        self._retry.pop(session_id, None)
        self._apply(session, session.close(reason))
        for key in [k for k in self.conns if k[0] == session_id]:
            self.conns.pop(key).session_id = None
        if self.store is not None:
            self.store.delete(session_id)
        self._free_pool(session.config.param_count)

    # --- WebSocket events ----------------------------------------------------------------------

    def max_binary_bytes(self, conn: Connection) -> int:
        """A DELTA frame is at most header + f32 payload of this session's model."""
        session = self.sessions.get(conn.session_id or "")
        count = session.config.param_count if session else 0
        return HEADER_SIZE + 4 * count

    def join(self, conn: Connection, msg: Join) -> None:
        session = self.sessions.get(msg.session_id)
        if session is None:
            self._refuse(conn, "unknown_session", "no such session")
            return
        try:
            client_id, superseded, effects = session.join(msg.name, msg.client_token, self.clock(), msg.join_secret)
        except JoinRefused as e:
            self._refuse(conn, e.reason, e.message)
            return
        old = self.conns.get((session.session_id, client_id))
        if old is not None and old is not conn:
            old.session_id = None  # unbound first: its disconnect must not remove the new binding
            old.send(error("superseded", "another connection resumed this client"))
            old.close(CLOSE_SUPERSEDED, "superseded")
        conn.session_id, conn.client_id = session.session_id, client_id
        self.conns[(session.session_id, client_id)] = conn
        self._apply(session, effects)
        self._schedule_close(session)

    async def submit(self, conn: Connection, frame: bytes) -> bool:
        """A DELTA frame: cheap checks here, validation and aggregation in worker threads; True when
        the round accepted it."""
        session = self._session_of(conn)
        if session is None:
            conn.send(reject("not_joined", "send a join message first"))
            return False
        client_id = conn.client_id
        effects, header = session.check_submission(client_id, frame, self.clock())
        self._apply(session, effects)
        if header is None:
            return False
        if self._heavy is None:
            self._heavy = asyncio.Semaphore(HEAVY_SLOTS)
        async with self._heavy:  # a relay-wide slot for the validation only: never held while waiting
            values = self._take_buffer(session.config.param_count)  # for a session's lock (a close)
            try:
                delta = await asyncio.to_thread(aggregate.validate_delta, frame, session.config, values)
            except Rejected as e:
                conn.send(reject(e.reason, e.message, round=session.round))
                return False
            finally:
                self._give_back(values)
        delta = dataclasses.replace(delta, values=None)  # the decoded scratch went back to the pool
        async with self._lock(session):
            if self.sessions.get(session.session_id) is not session:
                return False  # deleted meanwhile
            refused = session.accept(client_id, delta, self.clock())
            if refused:
                self._apply(session, refused)
                return False
            session.hold(client_id, delta)  # its frame, summed (robustly) when the round closes
            self._apply(session, session.acknowledge(client_id))
            await self._close_locked(session)
        return True

    def loss_ping(self, conn: Connection, msg: LossPing) -> None:
        session = self._session_of(conn)
        if session is None:
            conn.send(error("not_joined", "send a join message first"))
            return
        self._apply(session, session.loss_ping(conn.client_id, msg.loss, msg.tokens, self.clock()))

    def disconnect(self, conn: Connection) -> None:
        session = self._session_of(conn)
        if session is None:
            return
        key = (session.session_id, conn.client_id)
        if self.conns.get(key) is conn:
            del self.conns[key]
            if not self.stopping:  # a restart's 1012 is no leaving: the session stays as last saved
                self._apply(session, session.leave(conn.client_id, self.clock()))
        conn.session_id = None

    # --- internals -----------------------------------------------------------------------------

    def _lock(self, session: Session) -> asyncio.Lock:
        return self.locks.setdefault(session.session_id, asyncio.Lock())

    def _take_buffer(self, count: int) -> np.ndarray:
        free = self._buffers.get(count)
        return free.pop() if free else np.empty(count, np.float32)

    def _give_back(self, values: np.ndarray) -> None:
        """Pool a buffer for the next delta of its size, while some session still has that size."""
        count = values.shape[0]
        if any(s.config.param_count == count for s in self.sessions.values()):
            self._buffers.setdefault(count, []).append(values)

    def _free_pool(self, count: int) -> None:
        """Free the pooled buffers of a size that no session uses any more."""
        if not any(s.config.param_count == count for s in self.sessions.values()):
            self._buffers.pop(count, None)

    def _schedule_close(self, session: Session) -> None:
        """After a cheap event: a round whose deadline passed with deltas closes soon after."""
        if self._close_wanted(session) and not self._lock(session).locked():
            task = asyncio.get_running_loop().create_task(self._close_if_due(session))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _close_wanted(self, session: Session) -> bool:
        """The round is due to close and no failed close is waiting out its backoff."""
        now = self.clock()
        retry = self._retry.get(session.session_id)
        return session.close_due(now) and (retry is None or now >= retry[0])

    async def _close_if_due(self, session: Session) -> None:
        if self._close_wanted(session):
            async with self._lock(session):
                await self._close_locked(session)

    async def _close_locked(self, session: Session) -> None:
        """Close the round if it is (still) due: outer step and checkpoint in threads, then commit
        and broadcast on the loop. The caller holds the session's lock. A failure (a full disk) is
        logged and retried with backoff by the timer; the round stays open meanwhile."""
        if not self._close_wanted(session) or self.sessions.get(session.session_id) is not session:
            return
        try:
            plan = await asyncio.to_thread(session.prepare_close)
            if self.store is not None:
                header, arrays = session.checkpoint(plan)
                await asyncio.to_thread(self.store.save, session.session_id, header, arrays)
        except Exception as e:
            failures = self._retry.get(session.session_id, (0.0, 0))[1] + 1
            wait = min(self.settings.close_retry_max_s, self.settings.close_retry_s * 2 ** (failures - 1))
            self._retry[session.session_id] = (self.clock() + wait, failures)
            log.error("closing round %d of session %s failed (%d in a row), retrying in %.1f s: %s: %s",
                      session.round, session.session_id, failures, wait, type(e).__name__, e)
            return
        if self._retry.pop(session.session_id, None) is not None:
            log.info("round %d of session %s closed after earlier failures", session.round, session.session_id)
        if self.sessions.get(session.session_id) is not session:
            return
        effects = session.commit_close(plan, self.clock())
        session.dirty = False  # saved above, before anyone could see the new round
        self._apply(session, effects)

    def _session_of(self, conn: Connection) -> Session | None:
        return self.sessions.get(conn.session_id) if conn.session_id else None

    def _refuse(self, conn: Connection, reason: str, message: str) -> None:
        conn.send(error(reason, message))
        conn.close(CLOSE_POLICY, reason)

    def _save(self, session: Session) -> None:
        if self.store is not None:
            header, arrays = session.checkpoint()
            self.store.save(session.session_id, header, arrays)
        session.dirty = False

    def _apply(self, session: Session, effects: list[Effect]) -> None:
        if session.dirty:
            try:
                self._save(session)
            except Exception:  # still dirty: the next event tries again
                log.exception("checkpoint of session %s failed", session.session_id)
        for effect in effects:
            for client_id in effect.to:
                conn = self.conns.get((session.session_id, client_id))
                if conn is None:
                    continue
                if isinstance(effect, Send):
                    conn.send(effect.data, latest=effect.latest)
                elif isinstance(effect, Close):
                    conn.close(effect.code, effect.reason)
