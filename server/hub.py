"""The relay's live state: sessions, the connections bound to their clients, the round timer.

Every session call returns effects; `_apply` first writes a checkpoint when a round committed
(so a broadcast never announces weights that a restart could lose), then queues the frames.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Callable

import numpy as np

from pyscript_app.config import ModelConfig
from pyscript_app.frames import HEADER_SIZE
from pyscript_app.reference.init import init_params

from .connection import CLOSE_POLICY, CLOSE_RESTART, CLOSE_SUPERSEDED, Connection
from .protocol import InvalidRequest, Join, LossPing, SessionConfig, build_session_config, error, reject
from .roster import JoinRefused
from .session import Close, Effect, Send, Session
from .settings import RelaySettings
from .storage import CheckpointStore

log = logging.getLogger("tabgpt.relay")


class TooManySessions(Exception):
    pass


class Relay:
    def __init__(self, settings: RelaySettings, clock: Callable[[], float] | None = None):
        self.settings = settings
        self.clock = clock or time.time
        self.sessions: dict[str, Session] = {}
        self.conns: dict[tuple[str, str], Connection] = {}
        self.store = CheckpointStore(settings.state_dir) if settings.state_dir else None

    # --- lifecycle -----------------------------------------------------------------------------

    def load(self) -> None:
        """Reload the sessions checkpointed in state_dir (rounds resume when a client joins)."""
        if self.store is None:
            return
        for header, arrays in self.store.load_all():
            try:
                session = Session.from_checkpoint(header, arrays, self.settings.max_clients_per_session)
            except (KeyError, TypeError, ValueError) as e:
                log.error("skipping checkpoint of %s: %s", header.get("session_id"), e)
                continue
            self.sessions[session.session_id] = session
        log.info("relay loaded %d session(s)", len(self.sessions))

    def shutdown(self) -> None:
        """Final checkpoint of every session, then close every client with 1012 (restarting)."""
        for session in self.sessions.values():
            self._save(session)
        for conn in list(self.conns.values()):
            conn.close(CLOSE_RESTART, "relay restarting")

    async def run_ticker(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self.settings.tick_interval_s)

    def tick(self) -> None:
        now = self.clock()
        for session in list(self.sessions.values()):
            self._apply(session, session.tick(now))

    # --- REST ----------------------------------------------------------------------------------

    def new_config(self, body: object) -> SessionConfig:
        if len(self.sessions) >= self.settings.max_sessions:
            raise TooManySessions(f"relay has its maximum of {self.settings.max_sessions} sessions")
        return build_session_config(body, self.settings, init_seed=secrets.randbits(32))

    @staticmethod
    def initial_weights(config: SessionConfig) -> np.ndarray:
        return init_params(ModelConfig.from_dict(config.model_config), config.init_seed)

    def add_session(self, config: SessionConfig, weights: np.ndarray) -> tuple[Session, str]:
        if len(self.sessions) >= self.settings.max_sessions:  # re-checked: weights were made off-loop
            raise TooManySessions(f"relay has its maximum of {self.settings.max_sessions} sessions")
        session, owner_token = Session.create(config, weights, self.settings.max_clients_per_session, self.clock())
        self.sessions[session.session_id] = session
        self._save(session)
        return session, owner_token

    def delete_session(self, session_id: str) -> None:
        session = self.sessions.pop(session_id)
        self._apply(session, session.close("deleted"))
        for key in [k for k in self.conns if k[0] == session_id]:
            self.conns.pop(key).session_id = None
        if self.store is not None:
            self.store.delete(session_id)

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
            client_id, superseded, effects = session.join(msg.name, msg.client_token, self.clock())
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

    def submit(self, conn: Connection, frame: bytes) -> None:
        session = self._session_of(conn)
        if session is None:
            conn.send(reject("not_joined", "send a join message first"))
            return
        self._apply(session, session.submit(conn.client_id, frame, self.clock()))

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
            self._apply(session, session.leave(conn.client_id, self.clock()))
        conn.session_id = None

    # --- internals -----------------------------------------------------------------------------

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
            self._save(session)
        for effect in effects:
            for client_id in effect.to:
                conn = self.conns.get((session.session_id, client_id))
                if conn is None:
                    continue
                if isinstance(effect, Send):
                    conn.send(effect.data)
                elif isinstance(effect, Close):
                    conn.close(effect.code, effect.reason)
