"""`tabgpt relay`: serve the relay with uvicorn (permessage-deflate off, frame cap, pings, SIGTERM)."""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import replace

import uvicorn

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


def run(host: str = "127.0.0.1", port: int = 8000, state_dir: str | None = None,
        settings: RelaySettings | None = None, redis_url: str | None = None) -> None:
    """Serve until SIGTERM / Ctrl-C. `state_dir` (or TABGPT_RELAY_STATE_DIR) holds checkpoints;
    `redis_url` (or TABGPT_RELAY_REDIS_URL) makes this one of several processes sharing sessions."""
    settings = settings or RelaySettings.from_env()
    if state_dir is not None:
        settings = replace(settings, state_dir=str(state_dir))
    if redis_url is not None:
        settings = replace(settings, redis_url=redis_url)
    app = create_app(settings)
    with warnings.catch_warnings():
        # uvicorn deprecates ws="websockets" in favour of "websockets-sansio"; both work here
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="uvicorn")
        warnings.filterwarnings("ignore", message=".*websockets.*", category=Warning)
        server = RelayServer(uvicorn_config(app, host, port, settings), app.state.relay)
        server.run()
