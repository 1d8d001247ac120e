"""uvicorn's sans-I/O WebSocket protocol with the relay's per-connection limits.

`protocol_class(settings)` is what `server.run` hands uvicorn as `ws=`. Each connection gets:

- a receive limit that follows what the connection may send: `max_control_bytes` until it joins,
  then the exact size of an f32 DELTA of its session's model (`ReceiveLimit`, raised by the app
  through the `tabgpt.ws` scope extension). A frame over it is refused with 1009 as soon as its
  header arrives, before any of its payload is buffered;
- a message deadline: a message (a frame, or a fragmented message) that has begun arriving must
  be complete within `message_timeout_s` of reading time (time while the relay itself is not
  reading, because the app has not taken the previous message yet, does not count); else the
  connection is closed with 1008 and aborted;
- sends in fragments of `send_chunk_bytes`, each within `send_timeout_s` (`Control.send`): a peer
  that does not read pins at most about one fragment plus the transport's high-water mark, and is
  aborted at the deadline;
- an abort, not a close, for a peer that does not take its data: a close waits to flush what the
  peer never reads, holding the buffers; after a close frame (or a ping timeout) the transport is
  aborted once `close_grace_s` has passed.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .settings import RelaySettings

log = logging.getLogger("tabgpt.relay")
EXTENSION = "tabgpt.ws"
CLOSE_POLICY = 1008


class ReceiveLimit:
    """A message size limit that websockets' parser compares each frame header against when the
    header arrives (it compares `length > limit` and subtracts the bytes of a fragmented message
    so far), so a change applies to the very next frame, even one whose parse already began."""

    __slots__ = ("value",)

    def __init__(self, value: int):
        self.value = int(value)

    def __lt__(self, other):
        return self.value < other

    def __gt__(self, other):
        return self.value > other

    def __le__(self, other):
        return self.value <= other

    def __ge__(self, other):
        return self.value >= other

    def __sub__(self, other):
        return self.value - other

    def __add__(self, other):
        return self.value + other

    __radd__ = __add__

    def __rsub__(self, other):
        return other - self.value

    def __int__(self):
        return self.value

    __index__ = __int__

    def __str__(self):
        return str(self.value)

    __format__ = lambda self, spec: format(self.value, spec)  # noqa: E731


class _AbortingTransport:
    """The transport, except that close() is followed by abort() after `grace` seconds when the
    peer has not taken what was still buffered (asyncio's close() waits for that forever)."""

    def __init__(self, transport, loop: asyncio.AbstractEventLoop, grace: float):
        self._transport, self._loop, self._grace = transport, loop, grace

    def close(self) -> None:
        self._transport.close()
        if self._transport.get_write_buffer_size() > 0:
            self._loop.call_later(self._grace, self._transport.abort)

    def __getattr__(self, name):
        return getattr(self._transport, name)


class Control:
    """What the app may do to its connection beyond ASGI (found in scope["extensions"]["tabgpt.ws"])."""

    def __init__(self, protocol: "RelayWebSocketProtocol"):
        self._p = protocol

    def set_receive_limit(self, n: int) -> None:
        self._p.receive_limit.value = int(n)

    @property
    def receive_limit(self) -> int:
        return self._p.receive_limit.value

    def abort(self) -> None:
        self._p.abort()

    async def send(self, data: str | bytes, chunk: int, timeout: float) -> None:
        """Send one message as fragments of at most `chunk` bytes, each written only once the
        transport has drained below its high-water mark, within `timeout` seconds (else the
        connection is aborted and ConnectionError raised). A connection thus buffers at most about
        one chunk beyond the high-water mark, however large the message and however slow the peer."""
        p = self._p
        text = isinstance(data, str)
        view = memoryview(data.encode() if text else data).cast("B")
        n = len(view)
        for lo in range(0, max(n, 1), chunk):
            await self.wait_writable(timeout)
            piece, fin = view[lo : lo + chunk], lo + chunk >= n
            if lo == 0:
                (p.conn.send_text if text else p.conn.send_binary)(piece, fin=fin)
            else:
                p.conn.send_continuation(piece, fin=fin)
            p.transport.write(b"".join(p.conn.data_to_send()))

    async def wait_writable(self, timeout: float) -> None:
        """Wait until the transport takes more data; abort the connection after `timeout` s."""
        p = self._p
        if p.disconnected or p.close_sent or p.transport.is_closing():
            raise ConnectionError("the connection is closed")
        if not p.writable.is_set():
            try:
                await asyncio.wait_for(p.writable.wait(), timeout)
            except asyncio.TimeoutError:
                log.warning("aborting a connection that took no data for %.1f s", timeout)
                p.abort()
                raise ConnectionError("write deadline passed") from None
        if p.disconnected or p.close_sent or p.transport.is_closing():
            raise ConnectionError("the connection is closed")


class RelayWebSocketProtocol(WebSocketsSansIOProtocol):
    message_timeout_s = 120.0
    close_grace_s = 5.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.receive_limit = ReceiveLimit(self.config.ws_max_size)
        self.conn.max_message_size = self.receive_limit
        self.close_timeout = self.close_grace_s
        self._message_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.transport = _AbortingTransport(transport, self.loop, self.close_grace_s)

    def connection_lost(self, exc) -> None:
        self._cancel_message_timer()
        super().connection_lost(exc)

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][EXTENSION] = Control(self)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_message()

    async def receive(self):
        message = await super().receive()
        self._watch_message()
        return message

    def abort(self) -> None:
        """End now, dropping whatever is buffered either way (the peer gets no close frame)."""
        self._cancel_message_timer()
        if not self.transport.is_closing() or self.transport.get_write_buffer_size() > 0:
            self.transport.abort()

    # --- the message deadline ------------------------------------------------------------------

    def _mid_message(self) -> bool:
        return bool(self.conn.reader.buffer) or self.conn.current_size is not None or bool(self.frames)

    def _watch_message(self) -> None:
        if self.close_sent or self.disconnected or self.read_paused or not self._mid_message():
            self._cancel_message_timer()
        elif self._message_timer is None:
            self._message_timer = self.loop.call_later(self.message_timeout_s, self._message_too_slow)

    def _cancel_message_timer(self) -> None:
        if self._message_timer is not None:
            self._message_timer.cancel()
            self._message_timer = None

    def _message_too_slow(self) -> None:
        self._message_timer = None
        if self.close_sent or self.disconnected:
            return
        log.warning("closing a connection whose message took over %.1f s", self.message_timeout_s)
        self.queue.put_nowait({"type": "websocket.disconnect", "code": CLOSE_POLICY, "reason": "message too slow"})
        try:
            self.conn.fail(CLOSE_POLICY, "message too slow")
            self.transport.write(b"".join(self.conn.data_to_send()))
        except Exception:  # the connection is going away anyway
            pass
        self.close_sent = True
        self.abort()

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        self.abort()  # a peer that stopped answering pings will not take what is still buffered


def protocol_class(settings: RelaySettings) -> type[RelayWebSocketProtocol]:
    """The protocol class with this relay's deadlines."""
    return type("RelayWebSocketProtocol", (RelayWebSocketProtocol,), {
        "message_timeout_s": settings.message_timeout_s, "close_grace_s": settings.close_grace_s})
