"""The WebSocket endpoint `/ws`: origin check, auth-first-message, rate limit, size limits.

Text frames are JSON control messages of at most `max_control_bytes`; binary frames are DELTA
frames of at most header + 4 * param_count bytes. Anything larger closes the socket with 1009
(under `tabgpt relay`, server/wsproto.py already refuses it at the frame's header: the limit is
`max_control_bytes` until the join, then the session's frame size, set here).
Everything else that is wrong gets a typed reply (`error` or `submit_reject`) and changes nothing.
"""

from __future__ import annotations

import asyncio
import re

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from .connection import CLOSE_POLICY, CLOSE_TOO_BIG, Connection, TokenBucket
from .hub import Relay
from .quotas import client_address
from .protocol import Join, LossPing, ProtocolError, error, parse_client_message, reject
from .settings import RelaySettings
from .wsproto import EXTENSION

LOCALHOST_ORIGIN = re.compile(r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$")
RATE_STRIKES = 3  # rate-limit replies before the relay closes the connection


def origin_allowed(origin: str | None, host: str | None, secure: bool, settings: RelaySettings) -> bool:
    """Browsers always send Origin; native clients usually send none and are allowed."""
    if origin is None:
        return True
    if host and origin == f"{'https' if secure else 'http'}://{host}":
        return True
    if settings.allow_localhost_origins and LOCALHOST_ORIGIN.fullmatch(origin):
        return True
    return origin in settings.allowed_origins


async def relay_socket(websocket: WebSocket) -> None:
    relay: Relay = websocket.app.state.relay
    settings = relay.settings
    secure = websocket.url.scheme == "wss"
    if not origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host"), secure, settings):
        await websocket.close(code=CLOSE_POLICY)  # before accept: the handshake is refused (403)
        return
    address = client_address(websocket.scope, settings)
    refusal = await relay.open_socket(address)
    if refusal is not None:  # the handshake is answered 429 (403 where the server cannot say so)
        await _deny(websocket, refusal)
        return
    try:
        await _serve(websocket, relay)
    finally:
        await relay.close_socket(address)


async def _deny(websocket: WebSocket, refusal) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse(
            {"detail": [refusal.message], "reason": refusal.reason}, status_code=429,
            headers={"Retry-After": str(refusal.retry_after)}))
    else:
        await websocket.close(code=CLOSE_POLICY)


async def _serve(websocket: WebSocket, relay: Relay) -> None:
    settings = relay.settings
    await websocket.accept()
    conn = Connection(websocket, settings.send_queue_frames,
                      TokenBucket(settings.rate_per_s, settings.rate_burst, relay.clock),
                      control=websocket.scope.get("extensions", {}).get(EXTENSION),
                      queue_bytes=settings.send_queue_bytes, chunk_bytes=settings.send_chunk_bytes,
                      send_timeout=settings.send_timeout_s)
    conn.start()
    try:
        await conn.serve(_receive_loop(websocket, conn, relay))
    finally:
        relay.disconnect(conn)
        await conn.finish()


async def _receive_loop(websocket: WebSocket, conn: Connection, relay: Relay) -> None:
    settings = relay.settings
    try:
        first = await asyncio.wait_for(websocket.receive(), settings.auth_timeout_s)
    except asyncio.TimeoutError:
        conn.send(error("auth_timeout", "the first message must be a join"))
        conn.close(CLOSE_POLICY, "auth timeout")
        return
    if not await _handle(first, conn, relay, first_message=True):
        return
    strikes = 0
    while not conn.closing:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data is not None and conn.session_id is not None:
            # A DELTA costs a token only when it is refused. The round waits for one DELTA per
            # client, and rounds close as fast as the clients deliver them (milliseconds for a
            # small model and few local steps): charging the accepted ones would discard, past the
            # burst, a delta its round cannot close without, and the client never sends it again.
            # At most one per client per round is accepted, so floods of refused ones still meet
            # the limit.
            if len(data) > relay.max_binary_bytes(conn):
                conn.close(CLOSE_TOO_BIG, "binary frame too large")
                return
            # this connection's next frame waits for the submission; the others do not
            if await relay.submit(conn, data) or conn.bucket.take():
                continue
        elif conn.bucket.take():
            if not await _handle(message, conn, relay, first_message=False):
                return
            continue
        strikes += 1
        if strikes > RATE_STRIKES:
            conn.close(CLOSE_POLICY, "rate limit")
            return
        conn.send(error("rate_limited", "too many messages; slow down"))


async def _handle(message: dict, conn: Connection, relay: Relay, first_message: bool) -> bool:
    """Dispatch one ASGI message; False when the connection is to end."""
    if message["type"] == "websocket.disconnect":
        return False
    text, data = message.get("text"), message.get("bytes")
    if text is not None:
        return await _handle_text(text, conn, relay, first_message)
    if data is not None:  # a joined connection's DELTA frames go to relay.submit in _receive_loop
        conn.send(reject("not_joined", "send a join message first"))
        conn.close(CLOSE_POLICY, "not joined")
        return False
    return True


async def _handle_text(text: str, conn: Connection, relay: Relay, first_message: bool) -> bool:
    settings = relay.settings
    if len(text) > settings.max_control_bytes:
        conn.close(CLOSE_TOO_BIG, "control message too large")
        return False
    try:
        msg = parse_client_message(text, settings.max_control_bytes)
    except ProtocolError as e:
        if e.reason == "too_large":
            conn.close(CLOSE_TOO_BIG, "control message too large")
            return False
        conn.send(error(e.reason, e.message))
        if first_message:
            conn.close(CLOSE_POLICY, "the first message must be a join")
            return False
        return True
    if isinstance(msg, Join):
        if conn.session_id is not None:
            conn.send(error("already_joined", "this connection has already joined"))
            return True
        joined = relay.join(conn, msg)
        if joined is not None:  # the cluster's join is a coroutine (it asks Redis)
            await joined
        if conn.session_id is not None and conn.control is not None:
            # from now on this connection may send its session's DELTA frames, and nothing larger
            conn.control.set_receive_limit(max(settings.max_control_bytes, relay.max_binary_bytes(conn)))
        return not conn.closing
    if first_message or conn.session_id is None:
        conn.send(error("not_joined", "the first message must be a join"))
        conn.close(CLOSE_POLICY, "not joined")
        return False
    if isinstance(msg, LossPing):
        relay.loss_ping(conn, msg)
    return True
