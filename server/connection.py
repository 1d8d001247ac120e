"""One client's WebSocket as the relay sees it: a bounded send queue, a rate limit, a drop switch.

The relay never awaits a client's socket while handling an event: it puts frames in that client's
queue and one sender task per connection writes them. A reader too slow to keep its queue below
`send_queue_frames` is dropped, so it can never delay the broadcast to anyone else. Status frames
that a newer one supersedes (send(..., latest=True): live_loss) take one place in the queue at most:
a newer one replaces the queued one, so a tab busy with a long step is not dropped for missing
loss updates it would have skipped anyway.
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


class _LatestMarker:
    """The queue position of the pending `latest` frame (Connection._latest holds its data)."""


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
    def __init__(self, websocket, queue_frames: int, bucket: TokenBucket):
        self.ws = websocket
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=queue_frames + 1)  # +1: room for a close
        self.queue_frames = queue_frames
        self.bucket = bucket
        self.session_id: str | None = None
        self.client_id: str | None = None
        self.closing = False
        self.dropped = asyncio.Event()  # set when the connection must end (closed, dropped, failed)
        self.close_code: int | None = None
        self._sender: asyncio.Task | None = None
        self._latest: str | bytes | None = None  # the newest superseding frame, not yet sent

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_loop())

    def send(self, data: str | bytes, latest: bool = False) -> None:
        """Queue a frame without waiting; drop this client if its queue is full. `latest`: a status
        frame that supersedes the previous one: it replaces one still queued instead of queueing."""
        if self.closing:
            return
        if latest and self._latest is not None:
            self._latest = data  # sent where the superseded one was queued
            return
        if self.queue.qsize() >= self.queue_frames:
            log.warning("dropping slow reader %s", self.client_id)
            self.drop(CLOSE_SLOW_READER, "slow reader")
            return
        if latest:
            self._latest = data
            self.queue.put_nowait(_LatestMarker())
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
        """End now: queued frames are discarded and the endpoint stops reading."""
        self.closing = True
        self.close_code = self.close_code or code
        if self._sender is not None:
            self._sender.cancel()
        self.dropped.set()

    async def _send_loop(self) -> None:
        try:
            while True:
                item = await self.queue.get()
                if isinstance(item, _CloseMarker):
                    await self.ws.close(item.code, item.reason)
                    break
                if isinstance(item, _LatestMarker):
                    item, self._latest = self._latest, None
                if isinstance(item, str):
                    await self.ws.send_text(item)
                else:
                    await self.ws.send_bytes(item)
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
