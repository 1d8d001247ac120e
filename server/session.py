"""One federated session: the round state machine. Pure: no sockets, no tasks, no sleeping.

Every method takes `now` (seconds on the relay's clock) and returns the effects to carry out
(Send / Close to client ids), so tests drive time by hand. A rejected input returns a typed reply
and changes nothing.

Round r of a session:
    idle      no timer; the first join (or resume) starts round r's timer: deadline = now + round_seconds
    training  clients train on W_r with their own data seed
    grace     from deadline - grace_seconds: submit_request {round, deadline_ms} goes to everyone
    closing   at `quorum` distinct submissions, or at the deadline with >= 1 submission:
              W_{r+1} = W_r + decode(u); checkpoint (by the hub, while `dirty`); round_closed + UPDATE;
              round r+1 starts at once (round_started to each client, with its own data_seed)
    restart   at the deadline with no valid submission: weights and round number unchanged, the timer
              restarts (fresh data seeds); with nobody connected the session goes idle instead

Two ways to drive it. `submit` and `tick` do everything inline (tests, and anything single-threaded).
The relay instead sets `auto_close = False` and runs the heavy steps off its event loop:
check_submission (cheap) -> aggregate.validate_delta (thread) -> accept -> sum.add (thread) ->
acknowledge; and, whenever close_due(now), prepare_close (thread) -> commit_close. Only one of
sum.add / prepare_close runs at a time (the relay's per-session lock); the cheap methods may run
meanwhile, and never touch the running sum or the weights while auto_close is off.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass

import numpy as np

from pyscript_app.federated.frames import DTYPE_BY_NAME, DTYPE_F32, KIND_UPDATE, KIND_WEIGHTS, FrameHeader, encode_header

from . import aggregate
from .aggregate import Rejected
from .protocol import SessionConfig, encode, reject
from .roster import JoinRefused, Roster, data_seed, token_hash


TIMELINE_KEEP = 400  # timeline items kept per session (deltas and round closes)
HISTORY_KEEP = 1000  # the latest rounds kept one entry each; older ones are merged (summarise_history)


def _check_header(h: dict) -> None:
    """The types of a checkpoint header's fields (a crafted file must not become a broken session)."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)

    def count(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    hexes = [h.get("owner_hash"), h.get("secret"), h.get("weights_sha256")] + (
        [h["join_hash"]] if h.get("join_hash") is not None else [])
    ok = (isinstance(h.get("session_id"), str) and all(isinstance(x, str) and re.fullmatch(r"[0-9a-f]{64}", x)
                                                       for x in hexes)
          and count(h.get("round")) and number(h.get("created_at"))
          and isinstance(h.get("creator", ""), str) and (h.get("idle_since") is None or number(h["idle_since"]))
          and isinstance(h.get("history"), list) and isinstance(h.get("roster"), list))
    if ok:
        ok = all(isinstance(e, dict) and count(e.get("round")) and number(e.get("loss")) and count(e.get("tokens"))
                 and count(e.get("contributors")) and count(e.get("rounds", 1)) for e in h["history"])
    if ok:
        ok = all(isinstance(c, dict) and isinstance(c.get("client_id"), str) and isinstance(c.get("name"), str)
                 and isinstance(c.get("token_hash"), str) and number(c.get("joined_at"))
                 and number(c.get("left_at", 0.0)) for c in h["roster"])
    if not ok:
        raise ValueError("checkpoint header fields have the wrong types")


def summarise_history(history: list[dict], keep: int = HISTORY_KEEP) -> list[dict]:
    """At most 2 * keep entries: the latest `keep` rounds one entry each; once that is passed, the
    older entries are merged in pairs, so older rounds get coarser (a span doubles each time it is
    merged again) and a session's history (and checkpoint header) stays bounded however long it runs.
    A merged entry starts at its first round and counts `rounds`; `tokens` is the sum, `loss` the
    tokens-weighted mean, `contributors` the most in any of its rounds."""
    while len(history) > 2 * keep:  # once per round closed; more often only for an old, longer history
        old, recent = history[:-keep], history[-keep:]
        history = [_merge(old[i : i + 2]) for i in range(0, len(old), 2)] + recent
    return history


def _merge(entries: list[dict]) -> dict:
    if len(entries) == 1:
        return entries[0]
    tokens = sum(e["tokens"] for e in entries)
    loss = (sum(e["loss"] * e["tokens"] for e in entries) / tokens if tokens > 0
            else sum(e["loss"] for e in entries) / len(entries))
    return {"round": entries[0]["round"], "loss": loss, "contributors": max(e["contributors"] for e in entries),
            "tokens": tokens, "rounds": sum(e.get("rounds", 1) for e in entries)}


@dataclass(frozen=True)
class Send:
    to: tuple[str, ...]
    data: str | bytes
    # the kind of a status frame that a newer one of the same kind supersedes (live_loss,
    # clients_changed): a client's queue holds at most one of each, replaced in place, so chatter
    # never makes a busy reader "slow"; "" for every other frame
    latest: str = ""


@dataclass(frozen=True)
class Close:
    to: tuple[str, ...]
    code: int
    reason: str


Effect = Send | Close


@dataclass(frozen=True)
class ClosePlan:
    closed: aggregate.ClosedRound
    entry: dict  # the history entry of the closing round
    weights_frame: bytes  # WEIGHTS frame of W_{r+1}
    counted: dict  # client id -> the tokens its delta counted with (capped when the session is robust)


class Session:
    def __init__(self, session_id: str, owner_hash: str, config: SessionConfig, weights: np.ndarray,
                 secret: bytes, max_clients: int, *, round: int = 0, history: list | None = None,
                 roster: Roster | None = None, momentum: np.ndarray | None = None, created_at: float = 0.0,
                 join_hash: str | None = None, creator: str = "", idle_since: float | None = None):
        assert weights.dtype == np.float32 and weights.shape == (config.param_count,)
        self.session_id, self.owner_hash, self.config = session_id, owner_hash, config
        self.weights, self.momentum, self.secret = weights, momentum, secret
        self.history_keep = HISTORY_KEEP
        self.round, self.history, self.created_at = round, summarise_history(list(history or [])), created_at
        self.join_hash = join_hash  # sha256 of the join secret a new client must present, or None
        self.creator = creator  # the quota key of the address that created it (server/quotas.py)
        # since when no client has been connected (None: one is); the relay expires the session
        # once this is idle_expiry_s ago
        self.idle_since = idle_since
        self._sum_buffer: np.ndarray | None = None  # the (P,) float64 sum, reused from round to round
        self.roster = roster or Roster(max_clients)
        self.phase, self.attempt = "idle", 0
        self.started_at = self.deadline = 0.0
        self.dirty = False  # a committed round (or creation) not yet checkpointed
        self.auto_close = True  # close rounds inside tick/submit (False: the caller closes them)
        self._weights_frame: bytes | None = None
        self._sha: str | None = None
        # what each client sent and when, for the federated page's round timeline (in memory only:
        # a restarted relay starts it afresh); contributed: tokens of each client's committed deltas
        self.timeline: list[dict] = []
        self.contributed: dict[str, int] = {}
        self._reset_round()

    # --- creation and persistence --------------------------------------------------------------

    @classmethod
    def create(cls, config: SessionConfig, weights: np.ndarray, max_clients: int, now: float,
               creator: str = "") -> tuple["Session", str]:
        owner_token = secrets.token_urlsafe(24)
        # hex: 128 bits that never start with "-" (a session id is pasted into `tabgpt join --session ID`)
        session = cls(secrets.token_hex(16), token_hash(owner_token), config, weights,
                      secrets.token_bytes(32), max_clients, created_at=now, creator=creator, idle_since=now)
        session.dirty = True
        return session, owner_token

    def new_join_secret(self) -> str:
        """Require a join secret from now on; returns it (only its sha256 is kept)."""
        # hex: 128 bits that never start with "-" (pasted into `tabgpt join --join-secret SECRET`, where a
        # leading "-" would read as an option)
        secret = secrets.token_hex(16)
        self.join_hash = token_hash(secret)
        self.dirty = True
        return secret

    def checkpoint(self, plan: "ClosePlan | None" = None) -> tuple[dict, dict[str, np.ndarray]]:
        """The session as saved; with `plan`, as it will be once commit_close(plan) has run."""
        round, history, weights, momentum, sha = self.round, self.history, self.weights, self.momentum, None
        if plan is not None:
            round, history = self.round + 1, summarise_history(self.history + [plan.entry], self.history_keep)
            weights, momentum, sha = plan.closed.weights, plan.closed.momentum, plan.closed.weights_sha256
        header = {"session_id": self.session_id, "owner_hash": self.owner_hash, "config": self.config.to_dict(),
                  "secret": self.secret.hex(), "round": round, "history": history,
                  "roster": self.roster.to_list(), "created_at": self.created_at, "join_hash": self.join_hash,
                  "creator": self.creator, "idle_since": self.idle_since,
                  "weights_sha256": sha or (self.weights_sha256 if plan is None else aggregate.weights_sha256(weights))}
        arrays = {"weights": weights}
        if momentum is not None:
            arrays["momentum"] = momentum
        return header, arrays

    @classmethod
    def from_checkpoint(cls, header: dict, arrays: dict[str, np.ndarray], max_clients: int) -> "Session":
        """Raises ValueError (or KeyError, TypeError) for a header that is not a session's."""
        _check_header(header)
        config = SessionConfig.from_dict(header["config"])
        weights = arrays["weights"]
        if weights.shape != (config.param_count,) or aggregate.weights_sha256(weights) != header["weights_sha256"]:
            raise ValueError("checkpoint weights do not match their config or sha256")
        return cls(header["session_id"], header["owner_hash"], config, weights, bytes.fromhex(header["secret"]),
                   max_clients, round=header["round"], history=header["history"],
                   roster=Roster.from_list(max_clients, header["roster"]), momentum=arrays.get("momentum"),
                   created_at=header["created_at"], join_hash=header.get("join_hash"),
                   creator=header.get("creator", ""), idle_since=header.get("idle_since"))

    def owner_matches(self, token: str) -> bool:
        return hmac.compare_digest(self.owner_hash, token_hash(token))

    # --- clients -------------------------------------------------------------------------------

    def join(self, name: str, client_token: str | None, now: float,
             join_secret: str | None = None) -> tuple[str, bool, list[Effect]]:
        """(client_id, superseded a live connection, effects). Raises roster.JoinRefused.
        A new client (no token) must bring the join secret when the session has one."""
        if client_token is None and self.join_hash is not None and not (
                join_secret is not None and hmac.compare_digest(self.join_hash, token_hash(join_secret))):
            raise JoinRefused("bad_secret", "this session needs its join secret (the share link carries it)")
        effects = self.tick(now)  # timers first: every event sees the state its time implies
        client, token, was_connected = self.roster.admit(name, client_token, now, protected=set(self.submitted))
        cid = client.client_id
        self.idle_since = None
        if self.phase == "idle":
            self._start_timer(now)
        ack = encode("join_ack", client_id=cid, client_token=token, round=self.round, config=self.config.to_dict(),
                     data_seed=self._seed(cid), weights_sha256=self.weights_sha256, **self._timing(now))
        effects += [Send((cid,), ack), Send((cid,), self.weights_frame())]
        if self.phase == "grace":
            effects.append(Send((cid,), self._submit_request(now)))
        effects.append(self._clients_changed())
        return cid, was_connected, effects

    def leave(self, client_id: str, now: float) -> list[Effect]:
        self.live.pop(client_id, None)
        left = self.roster.disconnect(client_id, now)
        if not self.roster.connected_ids():
            if left and self.idle_since is None:
                self.idle_since = now
            return []
        if not left:
            return []
        return [self._clients_changed()]

    def loss_ping(self, client_id: str, loss: float, tokens: int, now: float) -> list[Effect]:
        self.live[client_id] = (loss, max(tokens, 1))
        total = sum(t for _, t in self.live.values())
        mean = sum(l * t for l, t in self.live.values()) / total
        return [Send(self.roster.connected_ids(), encode("live_loss", loss=mean, clients=len(self.live)), latest="live_loss")]

    # --- submissions ---------------------------------------------------------------------------

    def submit(self, client_id: str, frame: bytes | memoryview, now: float) -> list[Effect]:
        """Validate, aggregate and (at quorum, when auto_close) close, all inline."""
        effects, header = self.check_submission(client_id, frame, now)
        if header is None:
            return effects
        try:
            delta = aggregate.validate_delta(frame, self.config)
        except Rejected as e:
            return effects + [self._reject(client_id, e)]
        refused = self.accept(client_id, delta, now)
        if refused:
            return effects + refused
        self.hold(client_id, delta)
        effects += self.acknowledge(client_id)
        if self.auto_close and self.close_due(now):
            effects += self._close_round(now)
        return effects

    def check_submission(self, client_id: str, frame: bytes | memoryview, now: float) -> tuple[list[Effect], object]:
        """The cheap checks (header, round, one per client): (effects, header or None if rejected)."""
        effects = self.tick(now)
        try:
            header = aggregate.parse_delta_header(frame)
            self._check_open(client_id, header.round)
        except Rejected as e:
            return effects + [self._reject(client_id, e)], None
        return effects, header

    def accept(self, client_id: str, delta: aggregate.Delta, now: float) -> list[Effect]:
        """Re-check a validated delta against the state now and reserve its place in the round;
        [] when accepted (then sum.add it and acknowledge), else the rejection."""
        effects = self.tick(now)
        try:
            self._check_open(client_id, delta.header.round)
            if delta.digest in self.digests:
                raise Rejected("duplicate", "this exact delta was already submitted this round")
        except Rejected as e:
            return effects + [self._reject(client_id, e)]
        self.submitted[client_id] = delta.header.tokens
        self.digests.add(delta.digest)
        client = self.roster.clients.get(client_id)
        self._log({"event": "delta", "round": self.round, "client_id": client_id, "name": client.name if client else "",
                   "tokens": delta.header.tokens, "loss": delta.header.loss, "at_ms": int(now * 1000)})
        return effects

    def hold(self, client_id: str, delta: aggregate.Delta) -> None:
        """Keep an accepted delta (its frame's elements) for the round's close."""
        h = delta.header
        self.held.append(aggregate.Held(client_id, delta.payload, h.dtype, delta.norm, h.tokens, h.loss))

    def acknowledge(self, client_id: str) -> list[Effect]:
        ack = encode("submit_ack", round=self.round, submissions=len(self.submitted), quorum=self.config.quorum)
        return [Send((client_id,), ack)]

    def close_due(self, now: float) -> bool:
        """Quorum reached, or the deadline passed with at least one valid delta."""
        if not self.submitted:
            return False
        return len(self.submitted) >= self.config.quorum or (self.phase == "grace" and now >= self.deadline)

    def _check_open(self, client_id: str, round: int) -> None:
        if self.phase == "idle" or round != self.round:
            raise Rejected("stale_round", f"round {round} is not the open round {self.round}")
        if client_id in self.submitted:
            raise Rejected("duplicate", f"already submitted for round {self.round}")

    def _reject(self, client_id: str, e: Rejected) -> Send:
        return Send((client_id,), reject(e.reason, e.message, round=self.round))

    # --- time ----------------------------------------------------------------------------------

    def tick(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        if self.phase == "training" and now >= self.deadline - self.config.grace_seconds:
            self.phase = "grace"
            effects.append(Send(self.roster.connected_ids(), self._submit_request(now)))
        if self.phase == "grace" and now >= self.deadline:
            if not self.submitted:
                effects += self._restart_round(now)
            elif self.auto_close:
                effects += self._close_round(now)
        return [e for e in effects if e.to]

    def _start_timer(self, now: float) -> None:
        self.phase, self.started_at, self.deadline = "training", now, now + self.config.round_seconds
        if self.config.grace_seconds <= 0:
            self.phase = "grace"

    def _restart_round(self, now: float) -> list[Effect]:
        self.attempt += 1
        return self._begin_round(now)

    def _begin_round(self, now: float) -> list[Effect]:
        """Round `self.round` starts afresh: a new timer and seeds, or idle when nobody is here."""
        self._reset_round()
        if not self.roster.connected_ids():
            self.phase = "idle"
            return []
        self._start_timer(now)
        return self._round_started(now)

    def _close_round(self, now: float) -> list[Effect]:
        return self.commit_close(self.prepare_close(), now)

    def prepare_close(self) -> "ClosePlan":
        """The heavy part of closing the round (outer step, sha256, next WEIGHTS frame); reads the
        running sum and the weights, changes nothing (the relay runs it in a thread)."""
        dtype = DTYPE_BY_NAME[self.config.broadcast_dtype]
        total, counted = aggregate.round_sum(self.held, self.config.param_count, self.config.robust, self._sum_buffer)
        self._sum_buffer = total.total  # reused next round (no new page faults)
        closed = aggregate.close_round(total, self.weights, self.config, self.momentum, dtype)
        entry = {"round": self.round, "loss": total.mean_loss, "contributors": len(self.submitted),
                 "tokens": total.tokens}
        head = encode_header(FrameHeader(KIND_WEIGHTS, DTYPE_F32, self.round + 1, self.config.param_count))
        return ClosePlan(closed, entry, b"".join((head, memoryview(closed.weights).cast("B"))), counted)

    def commit_close(self, plan: "ClosePlan", now: float) -> list[Effect]:
        """W_{r+1} becomes the session's weights; round_closed + UPDATE to all; round r+1 starts."""
        closed, entry = plan.closed, plan.entry
        self.weights, self.momentum = closed.weights, closed.momentum
        self._weights_frame, self._sha = plan.weights_frame, closed.weights_sha256
        self.history = summarise_history(self.history + [entry], self.history_keep)
        for item in self.timeline:
            if item["event"] == "delta" and item["round"] == entry["round"] and item["client_id"] in plan.counted:
                counted = plan.counted[item["client_id"]]
                item["weight"] = counted / max(1, entry["tokens"])  # its share of the mean delta
                self.contributed[item["client_id"]] = self.contributed.get(item["client_id"], 0) + counted
        self._log({"event": "closed", **entry, "at_ms": int(now * 1000)})
        self.round += 1
        self.dirty = True
        tokens, loss = entry["tokens"], entry["loss"]
        update = encode_header(FrameHeader(KIND_UPDATE, DTYPE_BY_NAME[self.config.broadcast_dtype], entry["round"],
                                           self.config.param_count, tokens=min(tokens, 0xFFFFFFFF), loss=loss))
        everyone = self.roster.connected_ids()
        effects: list[Effect] = [
            Send(everyone, encode("round_closed", **entry, next_round=self.round, weights_sha256=self.weights_sha256)),
            Send(everyone, update + closed.payload),
        ]
        self.attempt = 0
        return effects + self._begin_round(now)

    def _log(self, item: dict) -> None:
        self.timeline.append(item)
        del self.timeline[:-TIMELINE_KEEP]

    def _reset_round(self) -> None:
        self.held: list[aggregate.Held] = []  # accepted deltas, summed when the round closes
        self.submitted: dict[str, int] = {}
        self.digests: set[str] = set()
        self.live: dict[str, tuple[float, int]] = {}

    # --- messages ------------------------------------------------------------------------------

    def _seed(self, client_id: str) -> int:
        return data_seed(self.secret, client_id, self.round, self.attempt)

    def _timing(self, now: float) -> dict:
        return {"phase": self.phase, "deadline_ms": int(self.deadline * 1000),
                "remaining_ms": max(0, int((self.deadline - now) * 1000)) if self.phase != "idle" else 0}

    def _submit_request(self, now: float) -> str:
        return encode("submit_request", round=self.round, **self._timing(now))

    def _round_started(self, now: float) -> list[Effect]:
        timing = self._timing(now)
        return [Send((cid,), encode("round_started", round=self.round, data_seed=self._seed(cid), **timing))
                for cid in self.roster.connected_ids()]

    def _clients_changed(self) -> Send:
        return Send(self.roster.connected_ids(), encode("clients_changed", clients=self.roster.public()),
                    latest="clients_changed")

    def close(self, reason: str = "deleted") -> list[Effect]:
        everyone = self.roster.connected_ids()
        return [Send(everyone, encode("session_closed", reason=reason)), Close(everyone, 1000, "session closed")]

    @property
    def weights_sha256(self) -> str:
        if self._sha is None:
            self._sha = aggregate.weights_sha256(self.weights)
        return self._sha

    def weights_frame(self) -> bytes:
        """The WEIGHTS frame (f32) of W_round, built once per round."""
        if self._weights_frame is None:
            head = encode_header(FrameHeader(KIND_WEIGHTS, DTYPE_F32, self.round, self.config.param_count))
            self._weights_frame = head + self.weights.astype("<f4").tobytes()
        return self._weights_frame

    def status(self, now: float) -> dict:
        return {"session_id": self.session_id, "round": self.round, "clients": self.roster.public(),
                "submissions": len(self.submitted), "quorum": self.config.quorum, "history": self.history,
                "config": self.config.to_dict(), "param_count": self.config.param_count,
                "weights_sha256": self.weights_sha256, "timeline": self.timeline,
                "contributed": self.contributed, **self._timing(now)}
