"""`tabgpt relay`: serve the relay with uvicorn (permessage-deflate off, frame cap, pings, SIGTERM)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import uvicorn

from pyscript_app.errors import UserError
from pyscript_app.federated.frames import HEADER_SIZE

from .app import create_app
from .hub import Relay
from .settings import RelaySettings
from .wsproto import protocol_class


class RelayServer(uvicorn.Server):
    """On SIGTERM / SIGINT: a final checkpoint of every session and a 1012 close to every client,
    queued on the event loop before uvicorn's own shutdown (which closes stragglers with 1012 too)."""

    def __init__(self, config: uvicorn.Config, relay: Relay):
        super().__init__(config)
        self.relay = relay
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets=None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig, frame) -> None:
        if self._loop is not None and not self.should_exit:
            self._loop.call_soon_threadsafe(self.relay.shutdown)
        super().handle_exit(sig, frame)


def uvicorn_config(app, host: str, port: int, settings: RelaySettings, **extra) -> uvicorn.Config:
    if settings.ws_impl == "websockets-sansio":
        # per connection: max_control_bytes until it joins, then its session's exact frame size
        ws, max_size = protocol_class(settings), settings.max_control_bytes
    else:  # the legacy implementation: one limit for all, the largest frame any session accepts
        ws, max_size = settings.ws_impl, HEADER_SIZE + 4 * settings.max_param_count
    return uvicorn.Config(
        app, host=host, port=port, ws=ws, ws_per_message_deflate=False, ws_max_size=max_size,
        ws_ping_interval=settings.ping_interval_s, ws_ping_timeout=settings.ping_timeout_s,
        timeout_graceful_shutdown=5,
        # uvicorn would otherwise take X-Forwarded-For from a loopback peer; the relay reads the
        # client's address itself, from `trusted_proxy_header` only when one is configured
        proxy_headers=False, **extra,
    )


def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """Bound TCP sockets for every address `host` resolves to (as asyncio's create_server binds them),
    for uvicorn to listen on. A port that is taken or not allowed, or a host that does not resolve or is
    not this machine's, raises UserError naming it (the CLI's one line, exit 2) instead of uvicorn's
    logged traceback or its exit 1."""
    where = f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, OverflowError) as e:
        raise UserError(f"cannot listen on {where}: {getattr(e, 'strerror', None) or e}") from None
    sockets: list[socket.socket] = []
    for family, kind, proto, _, address in dict.fromkeys(infos):
        sock = socket.socket(family, kind, proto)
        sockets.append(sock)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # this socket only for IPv6: an IPv4 address has its own
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
        except OSError as e:
            for s in sockets:
                s.close()
            raise UserError(f"cannot listen on {where}: {e.strerror or e}") from None
    return sockets


def check_state_dir(state_dir: str) -> None:
    """The checkpoint folder (<state_dir>/sessions) exists, made if need be, and is writable; else a
    UserError naming it, before the relay accepts a session it could not keep."""
    folder = Path(state_dir) / "sessions"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot keep checkpoints in {state_dir}: {e.strerror or e}") from None


def check_redis(url: str) -> None:
    """Redis answers at `url` (one PING, 5 s at most); else a UserError naming it, instead of the
    lifespan's traceback."""
    import redis

    shown = _without_password(url)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    except ValueError as e:
        raise UserError(f"bad Redis URL {shown!r}: {e}") from None
    try:
        client.ping()
    except redis.RedisError as e:
        raise UserError(f"cannot reach Redis at {shown}: {e}") from None
    finally:
        client.close()


def _without_password(url: str) -> str:
    """`url` with any password in it replaced by ***, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def run(host: str = "127.0.0.1", port: int = 8000, state_dir: str | None = None,
        settings: RelaySettings | None = None, redis_url: str | None = None) -> None:
    """Serve until SIGTERM / Ctrl-C. `state_dir` (or TABGPT_RELAY_STATE_DIR) holds checkpoints;
    `redis_url` (or TABGPT_RELAY_REDIS_URL) makes this one of several processes sharing sessions."""
    settings = settings or RelaySettings.from_env()
    if state_dir is not None:
        settings = replace(settings, state_dir=str(state_dir))
    if redis_url is not None:
        settings = replace(settings, redis_url=redis_url)
    if settings.redis_url:
        check_redis(settings.redis_url)
    elif settings.state_dir:
        check_state_dir(settings.state_dir)
    sockets = listening_sockets(host, port)
    app = create_app(settings)
    with warnings.catch_warnings():
        # uvicorn deprecates ws="websockets" in favour of "websockets-sansio"; both work here
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="uvicorn")
        warnings.filterwarnings("ignore", message=".*websockets.*", category=Warning)
        server = RelayServer(uvicorn_config(app, host, port, settings), app.state.relay)
        # uvicorn logs where it listens only for sockets it binds itself
        shown = f"[{host}]" if ":" in host else host
        print(f"tabgpt relay: listening on http://{shown}:{port} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        server.run(sockets=sockets)
