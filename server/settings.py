"""The relay's limits and defaults: one frozen dataclass, each field overridable by environment.

`RelaySettings.from_env()` reads TABGPT_RELAY_<FIELD NAME IN CAPITALS>, e.g.
TABGPT_RELAY_MAX_SESSIONS=8 or TABGPT_RELAY_ALLOWED_ORIGINS=https://example.org,https://b.example.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Mapping

ENV_PREFIX = "TABGPT_RELAY_"


class SettingsError(ValueError):
    """An environment override that does not parse; the message names the variable."""


@dataclass(frozen=True)
class RelaySettings:
    # where checkpoints live; None keeps everything in memory (tests, throwaway relays)
    state_dir: str | None = None
    # capacity
    max_sessions: int = 32
    max_clients_per_session: int = 32
    max_param_count: int = 30_000_000  # `large` is ~26.4M parameters
    # per client address (an IPv6 address counts by its /64): live sessions it created, open
    # WebSockets, and session creates in any 60 s; over one: 429 with Retry-After and a reason
    max_sessions_per_address: int = 4
    max_sockets_per_address: int = 64
    creates_per_minute: int = 10
    # a session with no connected client for this long expires: its state and checkpoint are deleted
    idle_expiry_s: float = 900.0
    # behind a reverse proxy: the request header that carries the client's address (its last
    # comma-separated entry, the one the proxy added), e.g. "x-forwarded-for"; None: the peer address
    trusted_proxy_header: str | None = None
    # several relay processes, one deployment: the Redis server they share their sessions through
    # (`tabgpt relay --redis redis://HOST:PORT/DB`); None: this process alone holds its sessions
    redis_url: str | None = None
    # the keys' prefix in Redis (several deployments may share one server)
    redis_prefix: str = "tabgpt:"
    # a session's leader holds its lease this long (renewed while it lives); a process whose
    # heartbeat is this old counts as dead
    lease_s: float = 5.0
    # a client that left less than this long ago may still resume: newcomers never evict it
    resume_window_s: float = 120.0
    # the latest rounds a session's history keeps one entry each (older ones are merged; at most
    # twice this many entries in all)
    history_keep: int = 1000
    # control frames (JSON text) and the first-message (auth) deadline
    max_control_bytes: int = 4096
    auth_timeout_s: float = 10.0
    # per connection: a token bucket of `rate_burst` messages refilled at `rate_per_s`
    rate_per_s: float = 20.0
    rate_burst: int = 40
    # outgoing frames queued per connection before the relay drops that (slow) reader, and the
    # bytes they may pin (frames are shared between connections, but a stalled one keeps old ones)
    send_queue_frames: int = 16
    send_queue_bytes: int = 256 << 20
    # large messages (WEIGHTS, UPDATE, a REST weights download) go out in chunks of this size; each
    # chunk must be taken by the peer within send_timeout_s, else the connection is aborted
    send_chunk_bytes: int = 1 << 20
    send_timeout_s: float = 30.0
    # a message that has begun arriving must be complete within this much reading time (1008 else)
    message_timeout_s: float = 120.0
    # after a close frame (or a ping timeout), a peer that does not take what is still buffered is
    # aborted after this long, which frees the buffers
    close_grace_s: float = 5.0
    # WebSocket ping/pong dead-peer detection (done by uvicorn's protocol layer)
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    # extra allowed Origins besides the relay's own and http://localhost / 127.0.0.1 (any port)
    allowed_origins: tuple[str, ...] = ()
    allow_localhost_origins: bool = True
    # Host header names (any port) the relay answers; others get 400 (a WebSocket: 403), which stops
    # DNS rebinding. A deployment names its public host name(s); "*" accepts any
    allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "[::1]")
    # session defaults (a POST may override within the bounds below)
    default_quorum: int = 2
    default_round_seconds: float = 60.0
    default_grace_seconds: float = 10.0
    # H: 10 rather than 50 ends two DiLoCo clients of `tiny` 0.016 nats/byte lower through the relay
    # (3 data seeds; `nano` equal) at 5x the bytes per step (benchmarks/README.md)
    default_max_local_steps: int = 10
    default_batch: int = 8
    min_round_seconds: float = 1.0
    max_round_seconds: float = 86400.0
    max_local_steps_limit: int = 10_000
    max_batch: int = 512
    # a delta is rejected when its L2 norm exceeds max_delta_rms * sqrt(param_count): a bound on
    # the root-mean-square change per parameter (Adam moves each one by about lr per step)
    max_delta_rms: float = 1.0
    # how often the relay's timer looks at round deadlines
    tick_interval_s: float = 0.05
    # a round close that fails (e.g. its checkpoint cannot be written) is logged and retried after
    # close_retry_s, doubling up to close_retry_max_s; the other sessions' rounds go on meanwhile
    close_retry_s: float = 0.5
    close_retry_max_s: float = 30.0
    # uvicorn's WebSocket implementation; "websockets-sansio" drops a dead peer at once on ping
    # timeout, where the legacy "websockets" one (deprecated by uvicorn) waits a 10 s close timeout
    ws_impl: str = "websockets-sansio"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "RelaySettings":
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f.name, f.type, raw)
        return replace(cls(), **{**values, **overrides})


def _parse(name: str, type_name, raw: str):
    kind = str(type_name)
    var = ENV_PREFIX + name.upper()
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if kind.startswith("str | None"):
            return raw or None
        return raw
    except ValueError:
        raise SettingsError(f"{var}={raw!r} is not a valid {kind}") from None
