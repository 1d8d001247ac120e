"""One client's WebSocket as the relay sees it: a bounded send queue, a rate limit, a drop switch.

The relay never awaits a client's socket while handling an event: it puts frames in that client's
queue and one sender task per connection writes them. A reader too slow to keep its queue below
`send_queue_frames` is dropped, so it can never delay the broadcast to anyone else. Status frames
that a newer one of their kind supersedes (send(..., latest=KIND): live_loss, clients_changed)
take one place in the queue per kind at most: a newer one replaces the queued one, so a tab busy
with a long step or a long download is not dropped for loss updates or join/leave chatter it
would have skipped anyway. The bytes a queue pins are counted too (`send_queue_bytes`).

Under `tabgpt relay` the sender writes through `server.wsproto.Control`: a large frame goes out in
fragments, each within a deadline, and a dropped or stalled connection is aborted, not closed, so
what it buffered is freed at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

log = logging.getLogger("tabgpt.relay")

CLOSE_SLOW_READER = 1008
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_RESTART = 1012
CLOSE_SUPERSEDED = 4001


@dataclass(frozen=True)
class _CloseMarker:
    code: int
    reason: str


@dataclass(frozen=True)
class _LatestMarker:
    """The queue position of the pending `latest` frame of one kind (Connection._latest holds its data)."""

    kind: object


class TokenBucket:
    """`burst` messages at once, refilled at `rate` per second of the injected clock."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.stamp = float(burst), clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Connection:
    def __init__(self, websocket, queue_frames: int, bucket: TokenBucket, control=None,
                 queue_bytes: int = 1 << 62, chunk_bytes: int = 1 << 20, send_timeout: float = 30.0):
        self.ws = websocket
        # server.wsproto.Control under `tabgpt relay` (chunked sends with a deadline, abort); None
        # elsewhere (in-process tests): then frames go through the ASGI socket as they are
        self.control = control
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=queue_frames + 1)  # +1: room for a close
        self.queue_frames = queue_frames
        self.queue_bytes, self.queued_bytes = queue_bytes, 0  # the limit, and what is queued or being sent
        self.chunk_bytes, self.send_timeout = chunk_bytes, send_timeout
        self.bucket = bucket
        self.session_id: str | None = None
        self.client_id: str | None = None
        self.closing = False
        self.dropped = asyncio.Event()  # set when the connection must end (closed, dropped, failed)
        self.close_code: int | None = None
        self._sender: asyncio.Task | None = None
        self._latest: dict[object, str | bytes] = {}  # per kind: the newest superseding frame, not yet sent

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_loop())

    def send(self, data: str | bytes, latest: object = None) -> None:
        """Queue a frame without waiting; drop this client if its queue is full. `latest`: the kind
        of a status frame that supersedes the previous one of that kind: it replaces one still
        queued instead of queueing."""
        if self.closing:
            return
        if latest and latest in self._latest:
            self.queued_bytes += len(data) - len(self._latest[latest])
            self._latest[latest] = data  # sent where the superseded one was queued
            return
        if self.queue.qsize() >= self.queue_frames or (
                self.queued_bytes > 0 and self.queued_bytes + len(data) > self.queue_bytes):
            log.warning("dropping slow reader %s", self.client_id)
            self.drop(CLOSE_SLOW_READER, "slow reader")
            return
        self.queued_bytes += len(data)
        if latest:
            self._latest[latest] = data
            self.queue.put_nowait(_LatestMarker(latest))
        else:
            self.queue.put_nowait(data)

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued have been sent."""
        if self.closing:
            return
        self.closing = True
        self.close_code = code
        self.queue.put_nowait(_CloseMarker(code, reason))

    def drop(self, code: int, reason: str) -> None:
        """End now: queued frames are discarded, the endpoint stops reading, and the connection is
        aborted (what it still buffered is freed; a close would wait for a peer that does not read)."""
        self.closing = True
        self.close_code = self.close_code or code
        if self._sender is not None:
            self._sender.cancel()
        if self.control is not None:
            self.control.abort()
        self.dropped.set()

    async def _send_loop(self) -> None:
        try:
            while True:
                item = await self.queue.get()
                if isinstance(item, _CloseMarker):
                    if self.control is not None:  # a peer that takes nothing never gets to block us
                        await self.control.wait_writable(self.send_timeout)
                    await self.ws.close(item.code, item.reason)
                    break
                if isinstance(item, _LatestMarker):
                    item = self._latest.pop(item.kind)
                if self.control is not None:
                    await self.control.send(item, self.chunk_bytes, self.send_timeout)
                elif isinstance(item, str):
                    await self.ws.send_text(item)
                else:
                    await self.ws.send_bytes(item)
                self.queued_bytes -= len(item)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the peer went away mid-send: nothing to do but stop
            log.info("send to %s failed: %s", self.client_id, e)
        finally:
            self.closing = True
            self.dropped.set()

    async def serve(self, receive_loop: Awaitable[None]) -> None:
        """Run `receive_loop` until it returns or this connection is dropped, whichever is first."""
        receiver = asyncio.ensure_future(receive_loop)
        waiter = asyncio.ensure_future(self.dropped.wait())
        try:
            await asyncio.wait({receiver, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receiver, waiter):
                task.cancel()
            # asyncio.wait, not gather: it never re-raises a child's CancelledError as our own,
            # which would confuse the cancel scope of whoever is cancelling us (anyio, uvicorn)
            await asyncio.wait({receiver, waiter})
            if not receiver.cancelled() and receiver.exception() is not None:
                log.error("receive loop failed", exc_info=receiver.exception())

    async def finish(self, timeout: float = 1.0) -> None:
        """Let the sender flush a pending close (bounded), then stop it."""
        if self._sender is None:
            return
        if self.closing and not self._sender.done():
            await asyncio.wait({self._sender}, timeout=timeout)  # neither raises nor cancels
        self._sender.cancel()
        await asyncio.wait({self._sender})
