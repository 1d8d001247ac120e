"""The Starlette app: REST routes for sessions, the `/ws` endpoint, the round timer in the lifespan.

`create_app(settings, clock=None, run_ticker=True)`; the live state is `app.state.relay` (a Relay).
Tests pass a fake clock and run_ticker=False, then call `relay.tick()` on the app's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from .hub import Relay, TooManySessions
from .protocol import InvalidRequest
from .quotas import client_address
from .settings import RelaySettings
from .ws import origin_allowed, relay_socket

MAX_BODY_BYTES = 16 * 1024
log = logging.getLogger("tabgpt.relay")
LOCALHOST_ORIGIN_REGEX = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?"


def _relay(request: Request) -> Relay:
    return request.app.state.relay


async def health(request: Request) -> JSONResponse:
    relay = _relay(request)
    return JSONResponse({"status": "ok", "sessions": len(relay.sessions), **relay.health_extra()})


async def create_session(request: Request) -> JSONResponse:
    relay = _relay(request)
    # a cross-site form or a no-cors fetch can POST text/plain without a CORS preflight: refuse both
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return JSONResponse({"detail": ["Content-Type must be application/json"]}, status_code=415)
    if not origin_allowed(request.headers.get("origin"), request.headers.get("host"), request.url.scheme == "https",
                          relay.settings):
        return JSONResponse({"detail": ["this Origin may not create sessions"]}, status_code=403)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"detail": [f"body over {MAX_BODY_BYTES} bytes"]}, status_code=413)
    try:
        parsed = json.loads(body or b"null", parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return JSONResponse({"detail": ["body is not valid JSON"]}, status_code=400)
    creator = client_address(request.scope, relay.settings)
    try:
        session, owner_token, join_secret = await relay.create(parsed, creator)
    except InvalidRequest as e:
        return JSONResponse({"detail": e.reasons}, status_code=422)
    except TooManySessions as e:
        return JSONResponse({"detail": [e.refusal.message], "reason": e.refusal.reason}, status_code=429,
                            headers={"Retry-After": str(e.refusal.retry_after)})
    except OSError as e:
        log.error("could not store a new session: %s: %s", type(e).__name__, e)
        return JSONResponse({"detail": ["the relay could not store the session; try again later"]}, status_code=503)
    config = session.config
    answer = {"session_id": session.session_id, "owner_token": owner_token, "config": config.to_dict(),
              "param_count": config.param_count}
    if join_secret is not None:
        answer["join_secret"] = join_secret
    return JSONResponse(answer, status_code=201)


async def list_sessions(request: Request) -> JSONResponse:
    # opt-in: an unlisted session's id is known only to whom its owner tells
    return JSONResponse({"sessions": await _relay(request).listed_sessions()})


async def session_status(request: Request) -> JSONResponse:
    relay = _relay(request)
    session = await relay.find(request.path_params["session_id"])
    if session is None:
        return JSONResponse({"detail": ["no such session"]}, status_code=404)
    return JSONResponse(await relay.status_of(session))


async def session_weights(request: Request) -> Response:
    relay = _relay(request)
    session = await relay.find(request.path_params["session_id"])
    if session is None:
        return JSONResponse({"detail": ["no such session"]}, status_code=404)
    return ChunkedResponse(session.weights_frame(), relay.settings.send_chunk_bytes, relay.settings.send_timeout_s,
                           media_type="application/octet-stream",
                           headers={"X-Weights-Sha256": session.weights_sha256, "X-Round": str(session.round)})


class ChunkedResponse(Response):
    """A large body sent in chunks, each within `timeout` seconds: the server writes the next chunk
    only once the client has taken the last one, so a client that does not read pins about one
    chunk (not a copy of the whole body), and it is cut off at the deadline."""

    def __init__(self, data: bytes, chunk: int, timeout: float, **kwargs):
        super().__init__(b"", **kwargs)
        self.data, self.chunk, self.timeout = data, chunk, timeout
        self.headers["content-length"] = str(len(data))

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        view = memoryview(self.data).cast("B")
        for lo in range(0, len(view), self.chunk):
            body = bytes(view[lo : lo + self.chunk])
            try:
                await asyncio.wait_for(send({"type": "http.response.body", "body": body, "more_body": True}),
                                       self.timeout)
            except asyncio.TimeoutError:
                log.warning("a client took no weights for %.1f s; its download was cut off", self.timeout)
                return  # uvicorn closes the connection: the response is incomplete
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def delete_session(request: Request) -> JSONResponse:
    relay = _relay(request)
    session = await relay.find(request.path_params["session_id"])
    if session is None:
        return JSONResponse({"detail": ["no such session"]}, status_code=404)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return JSONResponse({"detail": ["owner token required"]}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    if not session.owner_matches(token.strip()):
        return JSONResponse({"detail": ["not the owner"]}, status_code=403)
    if await relay.find(session.session_id) is session:  # not deleted meanwhile
        await relay.remove(session.session_id)
    return JSONResponse({"deleted": session.session_id})


class CrossOriginResourcePolicy:
    """`Cross-Origin-Resource-Policy: cross-origin` on every HTTP answer: the site's pages are
    cross-origin isolated (COEP require-corp), and such a page may read another origin's response
    only when it opts in (CORS does that for fetch; CORP covers the rest, e.g. a service worker's
    refetch in no-cors mode)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_corp(message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("Cross-Origin-Resource-Policy", "cross-origin")
            await send(message)

        await self.app(scope, receive, send_with_corp)


def host_allowed(host: str | None, allowed: tuple[str, ...]) -> bool:
    """The Host header's name (its port ignored) is one of `allowed` ("*": any)."""
    if "*" in allowed:
        return True
    if not host:
        return False
    host = host.strip().lower()
    name = host[: host.index("]") + 1] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
    return name in {h.lower() for h in allowed}


class HostAllowlist:
    """Only configured Host names get an answer: a page on evil.example whose DNS name was rebound
    to this relay's address still sends `Host: evil.example`, and is refused (HTTP 400; a WebSocket
    handshake 403)."""

    def __init__(self, app, allowed: tuple[str, ...]) -> None:
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if not host_allowed(host, self.allowed):
                if scope["type"] == "http":
                    await JSONResponse({"detail": ["unknown Host"]}, status_code=400)(scope, receive, send)
                else:
                    await receive()  # websocket.connect
                    await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
                return
        await self.app(scope, receive, send)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def create_app(settings: RelaySettings | None = None, clock: Callable[[], float] | None = None,
               run_ticker: bool = True) -> Starlette:
    settings = settings or RelaySettings.from_env()
    if settings.redis_url:  # one of several relay processes sharing their sessions through Redis
        from .cluster import ClusterRelay

        relay: Relay = ClusterRelay(settings, clock)
    else:
        relay = Relay(settings, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await relay.start()
        ticker = asyncio.create_task(relay.run_ticker()) if run_ticker else None
        try:
            yield
        finally:
            if ticker is not None:
                ticker.cancel()
            await relay.stop()
            await asyncio.sleep(0)  # let the senders start on their close frames

    routes = [
        Route("/api/health", health),
        Route("/api/sessions", create_session, methods=["POST"]),
        Route("/api/sessions", list_sessions, methods=["GET"]),
        Route("/api/sessions/{session_id}", session_status, methods=["GET"]),
        Route("/api/sessions/{session_id}", delete_session, methods=["DELETE"]),
        Route("/api/sessions/{session_id}/weights", session_weights, methods=["GET"]),
        WebSocketRoute("/ws", relay_socket),
    ]
    cors = Middleware(CORSMiddleware, allow_origins=list(settings.allowed_origins),
                      allow_origin_regex=LOCALHOST_ORIGIN_REGEX if settings.allow_localhost_origins else None,
                      allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"])
    app = Starlette(routes=routes, middleware=[Middleware(HostAllowlist, allowed=settings.allowed_hosts),
                                              Middleware(CrossOriginResourcePolicy), cors], lifespan=lifespan)
    app.state.relay = relay
    return app
