"""A federated client's round loop over any transport: the one loop of browser tabs and native workers.

Pure Python (asyncio, no socket library): the page hands it a `connect()` that opens a JS WebSocket,
the native worker (worker.py, `tabgpt join`) one over the `websockets` library. The protocol state
is relay_client.RelayClient; the tensors live in a model (federated/gpu_model.GpuRoundModel in the
browser and for `join --backend gpu`, federated/numpy_model.NumpyRoundModel for `--backend numpy`):

    model.load_weights(f32 payload) -> sha256      model.apply_update(payload, dtype) -> sha256
    model.step(data_seed, h, round * H + h); model.losses()      model.delta_f16() -> flat f16 bytes
    model.tokens_per_step

One round:
    wait      until it holds W_r (WEIGHTS or the last UPDATE) and this round's data_seed
    train     up to H = max_local_steps steps; it stops early when one more step would end within
              max(0.5 s, grace / 2) of the round's deadline (at least one step is always taken)
    submit    DELTA (f16) with tokens = steps * B * T and the mean local loss
    apply     round_closed + UPDATE: W_{r+1} = W_r + decode(u); its sha256 must equal
              round_closed.weights_sha256, else FederatedError("diverged")
A dropped connection is retried with exponential backoff, resuming with the client token; the relay
then sends the current weights again. A resumed client trains the open round again even if it had
sent its delta: a restarted relay keeps no uncommitted delta (if it still has ours, it answers
`duplicate`, which is harmless).

Every relay message, reject and error reaches `notify(kind, info)` so the page can show it; the
bytes sent and received are counted per round from the real frames (`traffic`).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Awaitable, Callable

from .frames import DTYPE_F32, HEADER_SIZE
from .relay_client import RelayClient, RelayProtocolError

PING_EVERY_S = 1.0  # loss_ping at most this often (the relay allows 20 messages/s)
RECONNECT_TRIES = 6
BACKOFF_S = 0.5  # 0.5, 1, 2, 4, 8, 16 s between tries
REFUSALS = {"unknown_session", "session_full", "bad_token", "bad_message", "bad_secret"}
CLOSE_SUPERSEDED = 4001


class FederatedError(RuntimeError):
    """The client cannot go on. reason: refused | diverged | superseded | unreachable | protocol."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class Closed:
    """Put in a link's inbox when its connection closes."""

    def __init__(self, code: int | None = None, reason: str = ""):
        self.code, self.reason = code, reason


class Link:
    """One connection: frames arrive in `inbox` (str, bytes, then one Closed); `send` raises
    ConnectionError once the connection is gone."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue = asyncio.Queue()

    async def send(self, data: str | bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Disconnected(Exception):
    def __init__(self, code: int | None, reason: str = ""):
        self.code, self.reason = code, reason


def frame_size(data: str | bytes) -> int:
    """Bytes on the wire of a frame's payload (text frames are UTF-8)."""
    return len(data.encode("utf-8")) if isinstance(data, str) else len(data)


class FederatedClient:
    def __init__(self, connect: Callable[[], Awaitable[Link]], session_id: str, name: str,
                 make_model: Callable[[dict], Awaitable[object]], notify: Callable[[str, dict], None] | None = None,
                 *, rounds: int | None = None, clock: Callable[[], float] = time.monotonic,
                 reconnect_tries: int = RECONNECT_TRIES, backoff_s: float = BACKOFF_S,
                 join_secret: str | None = None):
        self.connect, self.make_model = connect, make_model
        self.notify = notify or (lambda kind, info: None)
        self.rounds, self.clock = rounds, clock
        self.reconnect_tries, self.backoff_s = reconnect_tries, backoff_s
        self.client = RelayClient(session_id, name, join_secret=join_secret)
        self.model = None
        self.link: Link | None = None
        self.version = 0  # bumped whenever W_r changes (WEIGHTS or UPDATE)
        self.seed_round: int | None = None  # the round client.data_seed belongs to
        self.deadline: float | None = None  # the round's deadline on self.clock
        self.trained: tuple[int, int] | None = None  # (round, data_seed) whose delta we sent
        self.local: dict | None = None  # this round's local loss and tokens
        self.traffic: dict[int, dict[str, int]] = {}  # round -> bytes sent / received
        self.pinged_at = -math.inf  # when the last loss_ping went out, on self.clock
        self.rounds_done = 0
        self.finished = False
        self.end_reason = ""
        self.acked = False  # join_ack received on the current connection
        self._lost = ""  # why the last connection ended

    # --- connection ----------------------------------------------------------------------------

    async def run(self) -> str:
        """Train until the session closes, `rounds` rounds are done, or stop(); returns why it ended."""
        failures = 0
        while True:
            self.notify("connecting", {"attempt": failures + 1})
            reached = False  # whether this attempt got a connection at all (else: "cannot connect")
            try:
                link = await self.connect()
            except (OSError, ConnectionError) as e:
                reason = str(e) or type(e).__name__
            else:
                reached = True
                try:
                    if await self._serve(link):
                        return self.end_reason
                finally:
                    link.close()
                failures = 0 if self.acked else failures  # a working connection resets the count
                reason = self._lost
            if self.finished:
                return self.end_reason
            failures += 1
            if failures > self.reconnect_tries:
                raise FederatedError("unreachable", f"cannot reach the relay ({reason})")
            delay = self.backoff_s * 2 ** (failures - 1)
            self.notify("disconnected", {"reason": reason, "retry_in_s": delay, "attempt": failures,
                                         "reached": reached})
            await asyncio.sleep(delay)

    def stop(self) -> None:
        """Leave: the loop ends at its next frame or step (the page's Leave button)."""
        self.finished, self.end_reason = True, self.end_reason or "stopped"
        if self.link is not None:
            self.link.inbox.put_nowait(Closed(None, "left"))

    async def _serve(self, link: Link) -> bool:
        """Join and run rounds on one connection; True when done, False to reconnect."""
        self.link, self.acked, self._lost = link, False, "connection closed"
        try:
            await self._send(self.client.join_message())
            await self._round_loop()
            return True
        except _Disconnected as e:
            self._lost = f"connection closed ({e.code}{': ' + e.reason if e.reason else ''})"
            if self.client.closed or self.finished:
                self.end_reason = self.end_reason or "session_closed"
                return True
            if e.code == CLOSE_SUPERSEDED:
                raise FederatedError("superseded", "another tab or worker resumed this client") from None
            return False

    async def _send(self, data: str | bytes) -> None:
        try:
            await self.link.send(data)
        except ConnectionError:
            raise _Disconnected(None, "send failed") from None
        self._count("sent", data)

    def _count(self, direction: str, data: str | bytes, kind: str | None = None, round: int | None = None) -> None:
        """Add a frame's bytes to its round's traffic (a tensor frame's round is in its header)."""
        r = round if round is not None else self.client.round if self.client.round is not None else -1
        t = self.traffic.setdefault(r, {"sent": 0, "received": 0, "delta": 0, "update": 0, "weights": 0})
        t[direction] += frame_size(data)
        if kind:
            t[kind] += frame_size(data)

    # --- events --------------------------------------------------------------------------------

    async def _next(self, block: bool = True) -> bool:
        """Handle one queued frame (waiting for it when `block`); False when none was queued."""
        inbox = self.link.inbox
        if not block and inbox.empty():
            return False
        frame = await inbox.get()
        if isinstance(frame, Closed):
            raise _Disconnected(frame.code, frame.reason)
        try:
            if isinstance(frame, str):
                self._count("received", frame)
                await self._on_message(self.client.on_text(frame))
            else:
                event = self.client.on_binary(frame)
                self._count("received", frame, event.type, event.header.round)
                await self._on_tensor(event)
        except RelayProtocolError as e:
            raise FederatedError("diverged" if "diverged" in str(e) else "protocol", str(e)) from None
        return True

    async def _on_message(self, event) -> None:
        msg, kind = event.message, event.type
        if kind == "error" and msg.get("reason") == "unknown_session" and self.model is not None:
            # The session was deleted while this client was away (reconnecting): for it, the session
            # has ended. Reported as the session_closed it missed, so pages and workers say so.
            self.finished, self.end_reason = True, "session_closed"
            self.notify("message", {"type": "session_closed", "reason": "gone while this client was reconnecting"})
            return
        if "remaining_ms" in msg and msg.get("phase") != "idle":
            self.deadline = self.clock() + msg["remaining_ms"] / 1000
        self.notify("message", msg)
        if kind == "join_ack":
            self.seed_round, resumed = msg["round"], self.acked or self.model is not None
            self.acked = True
            if self.model is None:
                self.notify("joined", {"client_id": self.client.client_id, "round": msg["round"],
                                       "config": msg["config"], "resumed": False})
                self.model = await self.make_model(msg["config"])
            else:
                self.trained = None  # a restarted relay lost our uncommitted delta: train the round again
                self.notify("joined", {"client_id": self.client.client_id, "round": msg["round"],
                                       "config": msg["config"], "resumed": resumed})
        elif kind == "round_started":
            self.seed_round = msg["round"]
        elif kind == "session_closed":
            self.finished, self.end_reason = True, "session_closed"
        elif kind == "error" and msg.get("reason") in REFUSALS:
            raise FederatedError("refused", f"the relay refused to join: {msg['reason']}: {msg.get('message', '')}")

    async def _on_tensor(self, event) -> None:
        if event.type == "weights":
            if event.header.dtype != DTYPE_F32:
                raise RelayProtocolError("a WEIGHTS frame must hold f32 values")
            sha = await self.model.load_weights(event.payload)
        else:
            sha = await self.model.apply_update(event.payload, event.header.dtype)
        self.client.check_weights(sha)  # raises RelayProtocolError when they differ
        self.version += 1
        if event.type == "weights":
            self.notify("weights", {"round": self.client.round, "sha256": sha,
                                    "bytes": HEADER_SIZE + len(memoryview(event.payload).cast("B"))})
            return
        closed = event.message
        mine = self.local if self.local and self.local["round"] == closed["round"] else None
        t = self.traffic.get(closed["round"], {})
        self.notify("round", {"round": closed["round"], "next_round": closed["next_round"], "loss": closed["loss"],
                              "contributors": closed["contributors"], "tokens": closed["tokens"], "sha256": sha,
                              "local_loss": mine["loss"] if mine else None, "local_tokens": mine["tokens"] if mine else 0,
                              "sent": t.get("sent", 0), "delta": t.get("delta", 0),
                              "received": t.get("received", 0), "update": t.get("update", 0)})
        self.rounds_done += 1
        if self.rounds is not None and self.rounds_done >= self.rounds:
            self.finished, self.end_reason = True, "rounds"

    # --- rounds --------------------------------------------------------------------------------

    def _ready(self) -> bool:
        c = self.client
        return (self.model is not None and self.version > 0 and c.round is not None
                and self.seed_round == c.round and (c.round, c.data_seed) != self.trained)

    async def _round_loop(self) -> None:
        while not self.finished:
            if not self._ready():
                await self._next()
                continue
            version = self.version
            if await self._train_and_submit():
                while self.version == version and not self.finished and not self._ready():
                    await self._next()  # until the UPDATE (or a restarted round with a new seed)

    async def _train_and_submit(self) -> bool:
        """H local steps on W_r, then the DELTA; False when the round moved on under us."""
        c, m = self.client, self.model
        key, version = (c.round, c.data_seed), self.version
        H = int(c.config["max_local_steps"])
        margin = max(0.5, float(c.config["grace_seconds"]) / 2)
        losses: list[float] = []
        steps, step_s = 0, 0.0
        while steps < H:
            if steps and self.deadline is not None and self.clock() + step_s + margin > self.deadline:
                break
            began = self.clock()
            await m.step(key[1], steps, key[0] * H + steps)  # the session's global step sets the lr
            losses += await m.losses()  # waits for the GPU: the step time below is real
            steps += 1
            step_s = max(step_s * 0.8, self.clock() - began)  # a cautious running estimate
            self.notify("step", {"round": key[0], "step": steps, "steps": H, "loss": losses[-1] if losses else None})
            await asyncio.sleep(0)  # let the socket's frames in (the browser delivers them between tasks)
            while await self._next(block=False):
                pass
            if self.version != version or (c.round, c.data_seed) != key or self.finished:
                return False
            if losses:
                await self._ping(losses[-1], steps * m.tokens_per_step)
        mean_loss = sum(losses) / len(losses)
        tokens = steps * m.tokens_per_step
        self.local = {"round": key[0], "loss": mean_loss, "tokens": tokens}
        await self._ping(mean_loss, tokens)
        frame = c.delta_frame(await m.delta_f16(), tokens=tokens, loss=mean_loss)
        await self._send(frame)
        t = self.traffic.setdefault(key[0], {"sent": 0, "received": 0, "delta": 0, "update": 0, "weights": 0})
        t["delta"] += len(frame)
        self.trained = key
        self.notify("submitted", {"round": key[0], "tokens": tokens, "loss": mean_loss, "bytes": len(frame),
                                  "steps": steps})
        return True

    async def _ping(self, loss: float, tokens: int) -> None:
        """A loss_ping for the live chart, unless one went out less than PING_EVERY_S ago. The clock
        spans rounds: rounds of a few milliseconds would otherwise add a ping to every DELTA, and
        the relay's per-connection rate limit would close the connection."""
        if self.clock() - self.pinged_at >= PING_EVERY_S:
            await self._send(self.client.loss_ping(loss, tokens))
            self.pinged_at = self.clock()
