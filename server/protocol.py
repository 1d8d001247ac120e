"""JSON control messages and the session-creation request: parsed with declared types and sizes.

Nothing here trusts its input: every parse either returns a typed value or raises ProtocolError
(for WebSocket messages, with a machine-readable `reason`) or InvalidRequest (for REST bodies, with
the list of reasons that the relay returns as 422).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass

from pyscript_app.config import PRESETS, VOCAB_SIZE, ConfigError, preset
from pyscript_app.data.datasets import REGISTRY
from pyscript_app.federated.frames import DTYPE_BY_NAME
from pyscript_app.federated.outer import AGGREGATORS, OUTER_DEFAULTS

from .settings import RelaySettings

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")  # secrets.token_urlsafe alphabet
NAME_RE = re.compile(r"^[\w .\-]{0,64}$")  # display names: letters, digits, _ . - and space
SHA256_RE = re.compile(r"^([0-9a-f]{64})?$")

# DiLoCo's default outer lr and momentum (0.7 / 0.5, pyscript_app/federated/outer.py): measured best for
# 2 clients x H = 10 on the small presets (benchmarks/README.md); the paper's 0.7 / 0.9 (8 workers,
# H = 500) overshoots there.


class ProtocolError(ValueError):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class InvalidRequest(ValueError):
    def __init__(self, reasons: list[str]):
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class SessionConfig:
    """Fixed at creation; every submission is checked against it. Sent to clients in join_ack."""

    model: str
    model_config: dict
    param_count: int
    dataset: str
    tokenizer_sha256: str
    batch: int
    blocksize: int
    max_local_steps: int
    aggregator: str
    outer_lr: float
    outer_momentum: float
    quorum: int
    round_seconds: float
    grace_seconds: float
    broadcast_dtype: str
    init_seed: int
    max_delta_norm: float
    lr: float | None = None  # the clients' local learning rate; None: each client's default
    rounds: int | None = None  # planned length: the clients' lr decays over its last 20% (federated/local.py)
    # a new client must present the join secret the creator got (resumes with a client token need not)
    require_join_secret: bool = False
    listed: bool = False  # shown by GET /api/sessions
    # clip each delta's L2 norm to the round's (lower) median norm and cap each client's token count
    # at the round's median (False: the plain token-weighted mean)
    robust: bool = True

    @property
    def max_tokens(self) -> int:
        """Most tokens one client can train on in a round: B * T * max_local_steps."""
        return self.batch * self.blocksize * self.max_local_steps

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SessionConfig":
        return cls(**d)


# --- REST: POST /api/sessions ------------------------------------------------------------------


def build_session_config(body: object, settings: RelaySettings, init_seed: int) -> SessionConfig:
    """Validate a creation request; unknown keys and bad values are all reported at once."""
    if not isinstance(body, dict):
        raise InvalidRequest(["body must be a JSON object"])
    allowed = {
        "model", "dataset", "quorum", "round_seconds", "grace_seconds", "aggregator", "max_local_steps",
        "batch", "blocksize", "tokenizer_sha256", "vocab_size", "broadcast_dtype", "outer_lr",
        "outer_momentum", "init_seed", "lr", "rounds", "require_join_secret", "listed", "robust",
    }
    reasons = [f"unknown field {k!r}" for k in sorted(set(body) - allowed)]
    get = _Getter(body, reasons)
    model = get.string("model", None, lambda v: v in PRESETS, f"one of {', '.join(PRESETS)}")
    # a registry name only: a worker resolves any other name as a path on its own disk
    dataset = get.string("dataset", None, lambda v: v in REGISTRY, f"one of {', '.join(REGISTRY)}")
    sha = get.string("tokenizer_sha256", "", SHA256_RE.fullmatch, "64 lowercase hex digits")
    vocab = get.integer("vocab_size", VOCAB_SIZE, 2, 65536)
    quorum = get.integer("quorum", settings.default_quorum, 1, settings.max_clients_per_session)
    round_s = get.number("round_seconds", settings.default_round_seconds, settings.min_round_seconds,
                         settings.max_round_seconds)
    grace_s = get.number("grace_seconds", min(settings.default_grace_seconds, (round_s or 1) / 2), 0.0,
                         settings.max_round_seconds)
    steps = get.integer("max_local_steps", settings.default_max_local_steps, 1, settings.max_local_steps_limit)
    batch = get.integer("batch", settings.default_batch, 1, settings.max_batch)
    aggregator = get.string("aggregator", "fedavg", lambda v: v in AGGREGATORS, "fedavg or diloco")
    dtype = get.string("broadcast_dtype", "f16", lambda v: v in DTYPE_BY_NAME, "f16 or f32")
    default_lr, default_momentum = OUTER_DEFAULTS.get(aggregator, OUTER_DEFAULTS["fedavg"])  # (None: refused above)
    outer_lr = get.number("outer_lr", default_lr, 1e-6, 10.0)
    momentum = get.number("outer_momentum", default_momentum, 0.0, 0.999)
    seed = get.integer("init_seed", init_seed, 0, 0xFFFFFFFF)
    lr = get.number("lr", 0.0, 1e-6, 1.0) if "lr" in body else None
    rounds = get.integer("rounds", 0, 1, 1_000_000) if "rounds" in body else None
    require_secret = get.boolean("require_join_secret", False)
    listed = get.boolean("listed", False)
    robust = get.boolean("robust", True)
    cfg = None
    if model is not None and vocab is not None:
        try:
            cfg = preset(model, vocab)
        except ConfigError as e:
            reasons.append(str(e))
    blocksize = get.integer("blocksize", cfg.block_size if cfg else 1, 1, cfg.block_size if cfg else 1 << 16)
    if round_s is not None and grace_s is not None and grace_s >= round_s:
        reasons.append(f"grace_seconds {grace_s} must be less than round_seconds {round_s}")
    if cfg is not None and cfg.param_count > settings.max_param_count:
        reasons.append(f"model has {cfg.param_count} parameters, this relay allows {settings.max_param_count}")
    if reasons:
        raise InvalidRequest(reasons)
    return SessionConfig(
        model=model, model_config=cfg.to_dict(), param_count=cfg.param_count, dataset=dataset,
        tokenizer_sha256=sha, batch=batch, blocksize=blocksize, max_local_steps=steps,
        aggregator=aggregator, outer_lr=outer_lr, outer_momentum=momentum, quorum=quorum,
        round_seconds=round_s, grace_seconds=grace_s, broadcast_dtype=dtype, init_seed=seed,
        max_delta_norm=settings.max_delta_rms * math.sqrt(cfg.param_count), lr=lr, rounds=rounds,
        require_join_secret=require_secret, listed=listed, robust=robust,
    )


def stored_session_config(d: object, settings: RelaySettings) -> SessionConfig:
    """A checkpoint's configuration, accepted only when this relay would create it today: its
    request fields pass `build_session_config` and the derived model matches (InvalidRequest else)."""
    if not isinstance(d, dict) or not isinstance(d.get("model_config"), dict):
        raise InvalidRequest(["config is not an object with a model_config"])
    request = {k: d[k] for k in ("model", "dataset", "tokenizer_sha256", "batch", "blocksize", "max_local_steps",
                                 "aggregator", "outer_lr", "outer_momentum", "quorum", "round_seconds",
                                 "grace_seconds", "broadcast_dtype", "init_seed", "require_join_secret", "listed",
                                 "robust") if k in d}
    request["vocab_size"] = d["model_config"].get("vocab_size")
    for key in ("lr", "rounds"):
        if d.get(key) is not None:
            request[key] = d[key]
    config = build_session_config(request, settings, init_seed=0)
    if config.model_config != d["model_config"] or config.param_count != d.get("param_count"):
        raise InvalidRequest(["model_config or param_count does not match the preset"])
    return config


class _Getter:
    """Reads optional typed fields, appending a reason (and returning None) for each bad one."""

    def __init__(self, body: dict, reasons: list[str]):
        self.body, self.reasons = body, reasons

    def _value(self, key, default):
        if key not in self.body:
            if default is None:
                self.reasons.append(f"{key} is required")
            return default
        return self.body[key]

    def string(self, key, default, check, what):
        v = self._value(key, default)
        if v is None:
            return None
        if not isinstance(v, str) or not check(v):
            self.reasons.append(f"{key} must be {what}")
            return None
        return v

    def boolean(self, key, default):
        v = self._value(key, default)
        if not isinstance(v, bool):
            self.reasons.append(f"{key} must be true or false")
            return default
        return v

    def integer(self, key, default, lo, hi):
        v = self._value(key, default)
        if v is None:
            return None
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            self.reasons.append(f"{key} must be an integer in [{lo}, {hi}]")
            return None
        return v

    def number(self, key, default, lo, hi):
        v = self._value(key, default)
        if v is None:
            return None
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
            self.reasons.append(f"{key} must be a number in [{lo}, {hi}]")
            return None
        return float(v)


# --- WebSocket: client -> relay ----------------------------------------------------------------


@dataclass(frozen=True)
class Join:
    session_id: str
    name: str
    client_token: str | None
    join_secret: str | None = None


@dataclass(frozen=True)
class LossPing:
    loss: float
    tokens: int


MAX_LOSS = 1e4  # nats per token; ln(65536) is ~11, so anything near this is garbage


def parse_client_message(text: str, max_bytes: int) -> Join | LossPing:
    """One JSON text frame from a client. Raises ProtocolError(reason) on anything unexpected."""
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ProtocolError("too_large", f"control message over {max_bytes} bytes")
    try:
        msg = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_json", "control message is not valid JSON") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("bad_message", "control message must be an object with a string 'type'")
    kind = msg["type"]
    if kind == "join":
        _only(msg, {"type", "session_id", "name", "client_token", "join_secret"})
        sid, name, token = msg.get("session_id"), msg.get("name", ""), msg.get("client_token")
        secret = msg.get("join_secret")
        if secret is not None and (not isinstance(secret, str) or not TOKEN_RE.fullmatch(secret)):
            raise ProtocolError("bad_message", "join_secret must be a token string")
        if not isinstance(sid, str) or not TOKEN_RE.fullmatch(sid):
            raise ProtocolError("bad_message", "join needs a session_id string")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise ProtocolError("bad_message", "name must be up to 64 letters, digits, spaces, _ . -")
        if token is not None and (not isinstance(token, str) or not TOKEN_RE.fullmatch(token)):
            raise ProtocolError("bad_message", "client_token must be a token string")
        return Join(session_id=sid, name=name.strip() or "anonymous", client_token=token, join_secret=secret)
    if kind == "loss_ping":
        _only(msg, {"type", "loss", "tokens"})
        loss, tokens = msg.get("loss"), msg.get("tokens", 0)
        if not isinstance(loss, (int, float)) or isinstance(loss, bool) or not 0 <= loss <= MAX_LOSS:
            raise ProtocolError("bad_message", f"loss must be a number in [0, {MAX_LOSS}]")
        if not isinstance(tokens, int) or isinstance(tokens, bool) or not 0 <= tokens <= 0xFFFFFFFF:
            raise ProtocolError("bad_message", "tokens must be a non-negative integer")
        return LossPing(loss=float(loss), tokens=tokens)
    raise ProtocolError("unknown_type", "unknown message type")


def _only(msg: dict, keys: set[str]) -> None:
    extra = set(msg) - keys
    if extra:
        raise ProtocolError("bad_message", f"unexpected fields: {', '.join(sorted(map(str, extra)))[:200]}")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


# --- relay -> client ---------------------------------------------------------------------------


def encode(kind: str, **fields) -> str:
    """A server message: {"type": kind, **fields} as compact JSON (NaN is never sent)."""
    return json.dumps({"type": kind, **fields}, separators=(",", ":"), allow_nan=False)


def reject(reason: str, message: str, **fields) -> str:
    return encode("submit_reject", reason=reason, message=message, **fields)


def error(reason: str, message: str) -> str:
    return encode("error", reason=reason, message=message)
