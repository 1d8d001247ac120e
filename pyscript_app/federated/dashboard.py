"""The federated page's state: what the round loop reports and what the relay's status says.

Pure Python. Two inputs, both plain dicts:
    dash.on_event(kind, info)    every notify() of federated/client.py (the relay's messages included)
    dash.on_status(status)       GET /api/sessions/{id} (polled): devices, history, timeline
and federated/view.py renders it. Every reject, error, disconnect and the session's end becomes one
readable line in `messages` (REJECTS / ERRORS say what happened and what it means for the user).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_MESSAGES = 30

REJECTS = {
    "stale_round": "arrived after its round had closed, so it was not counted",
    "duplicate": "was already received for this round (nothing lost)",
    "shape_mismatch": "has the wrong number of weights for this session's model",
    "non_finite": "holds NaN or infinite values (the local training diverged)",
    "loss_out_of_range": "reported a loss outside [0, 10⁴]",
    "tokens_out_of_range": "claimed more tokens than batch × context × local steps",
    "norm_too_large": "changed the weights too much (the relay caps the norm of a delta)",
    "bad_header": "had a malformed frame header",
    "not_joined": "was sent before joining",
}
ERRORS = {
    "unknown_session": "The relay has no such session (it ended, or the id is mistyped).",
    "session_full": "The session is full: it has its maximum number of devices.",
    "bad_token": "The relay did not accept this tab's resume token.",
    "bad_message": "The relay could not read a message from this tab.",
    "superseded": "Another tab or worker resumed as this device; this one stopped.",
    "rate_limited": "This tab sent too many messages; the relay closed the connection.",
    "auth_timeout": "The relay closed the connection: the join took too long.",
}


@dataclass
class Message:
    level: str  # info | warning | error
    text: str


class Dashboard:
    def __init__(self, name: str = "") -> None:
        self.name = name
        self.session_id: str | None = None
        self.client_id: str | None = None
        self.config: dict | None = None
        self.round: int | None = None
        self.phase = "idle"
        self.remaining_ms: int | None = None
        self.mine = "idle"  # this tab: idle | connecting | loading | training | submitted | waiting | left | error
        self.step, self.steps = 0, 0
        self.submissions, self.quorum = 0, 0
        self.live_loss: float | None = None
        self.live_clients = 0
        self.local_loss: float | None = None  # this tab's latest step loss
        self.history: list[dict] = []  # the relay's rounds: {round, loss, contributors, tokens}
        self.local_losses: dict[int, float] = {}  # round -> this tab's mean local loss
        self.rounds: list[dict] = []  # this tab's applied updates: {round, sha256, sent, delta, received, update}
        self.loaded: list[dict] = []  # {round, sha256} of every WEIGHTS frame: the join and each resume
        self.weights_bytes = 0  # WEIGHTS frames received (on join and on every resume)
        self.clients: list[dict] = []
        self.timeline: list[dict] = []
        self.contributed: dict[str, int] = {}
        self.weights_sha256: str | None = None  # the relay's current (from status)
        self.messages: list[Message] = []

    @property
    def joined(self) -> dict | None:
        """{round, sha256} of the first weights this tab loaded (on joining), None before."""
        return self.loaded[0] if self.loaded else None

    # --- inputs --------------------------------------------------------------------------------

    def note(self, level: str, text: str) -> None:
        self.messages.append(Message(level, text))
        del self.messages[:-MAX_MESSAGES]

    def on_event(self, kind: str, info: dict) -> None:
        if kind == "connecting":
            self.mine = "connecting"
        elif kind == "joined":
            self.client_id, self.config = info["client_id"], info["config"]
            self.steps = int(self.config["max_local_steps"])
            self.mine = "loading" if not info["resumed"] else "waiting"
            if info["resumed"]:
                self.note("info", f"Reconnected: resumed as the same device at round {info['round']}.")
        elif kind == "weights":
            self.loaded.append({"round": info["round"], "sha256": info["sha256"]})
            self.weights_bytes += info.get("bytes", 0)
            self.mine = "waiting"
        elif kind == "step":
            self.mine, self.step, self.steps = "training", info["step"], info["steps"]
            if info["loss"] is not None:
                self.local_loss = info["loss"]
        elif kind == "submitted":
            self.mine = "submitted"
            self.local_losses[info["round"]] = info["loss"]
        elif kind == "round":
            self.rounds.append(info)
            self.mine, self.step = "waiting", 0
        elif kind == "disconnected":
            self.mine = "connecting"
            what = "Lost the connection to the relay" if info.get("reached", True) else "Cannot connect to the relay"
            self.note("warning", f"{what} ({info['reason']}); retrying in {info['retry_in_s']:g} s "
                                 f"(attempt {info['attempt']}).")
        elif kind == "message":
            self._on_message(info)

    def _on_message(self, msg: dict) -> None:
        kind = msg["type"]
        if "phase" in msg:
            self.phase = msg["phase"]
        if "remaining_ms" in msg:
            self.remaining_ms = msg["remaining_ms"]
        if kind == "join_ack":
            self.round = msg["round"]
            self.quorum = int(msg["config"]["quorum"])
        elif kind == "round_started":
            self.round, self.submissions = msg["round"], 0
        elif kind == "round_closed":
            self.round, self.submissions = msg["next_round"], 0
            entry = {k: msg[k] for k in ("round", "loss", "contributors", "tokens")}
            if all(h["round"] != entry["round"] for h in self.history):
                self.history.append(entry)
        elif kind == "submit_ack":
            self.submissions, self.quorum = msg["submissions"], msg["quorum"]
        elif kind == "submit_reject":
            what = REJECTS.get(msg["reason"], msg["reason"])
            level = "info" if msg["reason"] == "duplicate" else "warning"
            self.note(level, f"Your delta for round {msg.get('round')} {what}. ({msg.get('message', '')})")
        elif kind == "clients_changed":
            self.clients = list(msg["clients"])
        elif kind == "live_loss":
            self.live_loss, self.live_clients = msg["loss"], msg["clients"]
        elif kind == "session_closed":
            self.mine = "left"
            self.note("error", f"The session has ended ({msg.get('reason', 'closed')}): its owner deleted it "
                               "or the relay removed it. Your tab stopped training.")
        elif kind == "error":
            text = ERRORS.get(msg.get("reason"), f"The relay reported an error: {msg.get('reason')}")
            self.note("error", f"{text} {msg.get('message', '')}".strip())

    def on_status(self, status: dict) -> None:
        self.session_id = status["session_id"]
        self.round, self.phase = status["round"], status["phase"]
        self.remaining_ms = status.get("remaining_ms")
        self.quorum, self.submissions = status["quorum"], status["submissions"]
        self.clients = list(status["clients"])
        self.history = list(status["history"])
        self.timeline = list(status.get("timeline", []))
        self.contributed = dict(status.get("contributed", {}))
        self.weights_sha256 = status.get("weights_sha256")
        self.config = self.config or status.get("config")

    def fail(self, text: str) -> None:
        self.mine = "error"
        self.note("error", text)

    # --- derived -------------------------------------------------------------------------------

    def submitted_ids(self) -> set[str]:
        """Devices whose delta the relay holds for the open round."""
        return {t["client_id"] for t in self.timeline if t["event"] == "delta" and t["round"] == self.round}

    def devices(self) -> list[dict]:
        """The connected devices: name, state (training | submitted | idle), tokens contributed."""
        done = self.submitted_ids()
        out = []
        for c in self.clients:
            cid = c["client_id"]
            state = "idle" if self.phase == "idle" else "submitted" if cid in done else "training"
            if cid == self.client_id and self.mine in ("loading", "waiting") and state == "training":
                state = "idle"  # this tab knows better: it is not training right now
            out.append({"client_id": cid, "name": c["name"], "state": state, "me": cid == self.client_id,
                        "tokens": self.contributed.get(cid, 0)})
        return out

    def loss_points(self) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """(global loss per round from the relay, this tab's mean local loss per round)."""
        glob = [(h["round"], h["loss"]) for h in self.history if math.isfinite(h["loss"])]
        local = sorted((r, v) for r, v in self.local_losses.items() if math.isfinite(v))
        return glob, local

    def timeline_rounds(self, limit: int = 8) -> list[dict]:
        """Newest round first: {round, closed (item or None), opened_ms, deltas [items]}."""
        rounds: dict[int, dict] = {}
        for item in self.timeline:
            r = rounds.setdefault(item["round"], {"round": item["round"], "closed": None, "deltas": []})
            if item["event"] == "closed":
                r["closed"] = item
            else:
                r["deltas"].append(item)
        for r in rounds.values():
            before = rounds.get(r["round"] - 1)
            r["opened_ms"] = before["closed"]["at_ms"] if before and before["closed"] else None
        return [rounds[k] for k in sorted(rounds, reverse=True)[:limit]]
