"""`tabgpt join URL --session ID`: a native worker that trains in a federated session.

Numpy-only (native): the socket is the `websockets` asyncio client; the protocol state is
relay_client.RelayClient; local training is worker_session.LocalTrainer. The whole worker runs in
one asyncio loop: a reader task queues every frame the relay sends, and the round loop handles
them in order between local steps (so a round that closes without us interrupts our training).

One round, as the worker sees it:
    wait      until it holds W_r (WEIGHTS or the last UPDATE) and this round's data_seed
    train     up to H = max_local_steps steps; it stops early when one more step would end within
              DEADLINE_MARGIN of the round's deadline (at least one step is always taken)
    submit    DELTA (f16) with tokens = steps * B * T and the mean local loss
    apply     round_closed + UPDATE: W_{r+1} = W_r + decode(u) in f32; its sha256 must equal
              round_closed.weights_sha256 (else: exit 1, the weights diverged)
A dropped connection is retried RECONNECT_TRIES times with exponential backoff, resuming with the
client token; the relay then sends the current weights again.

Exit codes: 0 after --rounds rounds or when the session closes; 2 for a user error (unknown
session, tokenizer differs, bad URL); 1 when the relay is unreachable or the weights diverge.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from .errors import UserError
from .frames import DTYPE_F16
from .relay_client import RelayClient, RelayProtocolError
from .worker_session import LocalTrainer, f32_sha256, load_session_data, session_train_config

RECONNECT_TRIES = 5
BACKOFF_S = 0.5  # 0.5, 1, 2, 4, 8 s between tries
PING_EVERY_S = 1.0  # loss_ping at most this often (the relay allows 20 messages/s)
REFUSALS = {"unknown_session", "session_full", "bad_token", "bad_message"}


class WorkerError(RuntimeError):
    """The worker cannot go on (relay gone, weights diverged): one line, exit 1."""


class _Disconnected(Exception):
    def __init__(self, code: int | None):
        self.code = code


def ws_url(url: str) -> str:
    """http(s)://host[:port][/prefix] -> ws(s)://host[:port][/prefix]/ws; ws(s):// URLs are kept."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise UserError(f"relay URL must look like http://host:port, got {url!r}")
    path = parts.path.rstrip("/")
    if parts.scheme in ("http", "https") or not path:
        path += "/ws"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


class Worker:
    def __init__(self, url: str, session_id: str, name: str, backend: str = "numpy", gpu: str = "auto",
                 rounds: int | None = None, data_dir: str | None = None, out=None):
        self.url, self.backend_name, self.gpu, self.data_dir = ws_url(url), backend, gpu, data_dir
        self.rounds, self.out = rounds, out or sys.stdout
        self.client = RelayClient(session_id, name)
        self.trainer: LocalTrainer | None = None
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.ws = None
        self.version = 0  # bumped whenever W_r changes (WEIGHTS or UPDATE)
        self.seed_round: int | None = None  # the round client.data_seed belongs to
        self.deadline: float | None = None  # the round's deadline on time.monotonic()
        self.trained: tuple[int, int] | None = None  # (round, data_seed) whose delta we sent
        self.local: dict | None = None  # this round's local loss and tokens, for the round line
        self.rounds_done = 0
        self.finished = False
        self.acked = False  # join_ack received on the current connection

    # --- connection ----------------------------------------------------------------------------

    async def run(self) -> int:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidURI

        failures = 0
        while True:
            try:
                async with connect(self.url, max_size=None, compression=None, open_timeout=10,
                                   ping_interval=20, ping_timeout=60) as ws:
                    if await self._serve(ws):
                        return 0
                    failures = 0 if self.acked else failures  # a working connection resets the count
            except InvalidURI as e:
                raise UserError(f"bad relay URL: {e}") from None
            except (OSError, InvalidHandshake, asyncio.TimeoutError) as e:
                reason = f"{type(e).__name__}: {e}"
            else:
                reason = "connection closed"
            failures += 1
            if failures > RECONNECT_TRIES:
                raise WorkerError(f"cannot reach the relay at {self.url} ({reason})")
            delay = BACKOFF_S * 2 ** (failures - 1)
            print(f"relay connection lost ({reason}); retrying in {delay:.1f} s", file=sys.stderr, flush=True)
            await asyncio.sleep(delay)

    async def _serve(self, ws) -> bool:
        """Join and run rounds on one connection; True when the worker is done, False to reconnect."""
        self.ws, self.inbox, self.acked = ws, asyncio.Queue(), False
        reader = asyncio.create_task(self._read(ws))
        try:
            await self._send(self.client.join_message())
            await self._round_loop()
            return True
        except _Disconnected as e:
            if self.client.closed:
                return True
            if e.code == 4001:
                raise WorkerError("another connection resumed this client (superseded)") from None
            return False
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for frame in ws:
                self.inbox.put_nowait(frame)
        except ConnectionClosed:
            pass
        self.inbox.put_nowait(_Disconnected(ws.close_code))

    async def _send(self, data: str | bytes) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self.ws.send(data)
        except ConnectionClosed:
            raise _Disconnected(self.ws.close_code) from None

    # --- events --------------------------------------------------------------------------------

    async def _next(self, block: bool = True) -> bool:
        """Handle one queued frame (waiting for it when `block`); False when none was queued."""
        if not block and self.inbox.empty():
            return False
        frame = await self.inbox.get()
        if isinstance(frame, _Disconnected):
            raise frame
        try:
            if isinstance(frame, str):
                await self._on_message(self.client.on_text(frame))
            else:
                await self._on_tensor(self.client.on_binary(frame))
        except RelayProtocolError as e:
            raise WorkerError(str(e)) from None
        return True

    async def _on_message(self, event) -> None:
        msg = event.message
        if "remaining_ms" in msg and msg.get("phase") != "idle":
            self.deadline = time.monotonic() + msg["remaining_ms"] / 1000
        if event.type == "join_ack":
            self.seed_round, self.acked = msg["round"], True
            if self.trainer is None:
                self._setup(msg["config"])
            else:
                self.trained = None  # a restarted relay lost our uncommitted delta: train the round again
                print(f"resumed as client {self.client.client_id[:8]} at round {msg['round']}", file=sys.stderr,
                      flush=True)
        elif event.type == "round_started":
            self.seed_round = msg["round"]
        elif event.type == "submit_reject":
            print(f"delta for round {self.client.submitted_round} rejected: {msg['reason']} ({msg['message']})",
                  file=sys.stderr, flush=True)
        elif event.type == "session_closed":
            self.finished = True
        elif event.type == "error":
            if msg.get("reason") in REFUSALS:
                raise UserError(f"the relay refused to join: {msg['reason']}: {msg.get('message', '')}")
            print(f"relay error: {msg.get('reason')}: {msg.get('message', '')}", file=sys.stderr, flush=True)

    def _setup(self, config: dict) -> None:
        train_cfg = session_train_config(config, self.backend_name, self.gpu)
        train, _val = load_session_data(config, self.data_dir)
        self.trainer = LocalTrainer(train_cfg, train)
        mc = self.trainer.model_cfg
        print(f"joined session {self.client.session_id[:8]} as {self.client.client_id[:8]}: {config['model']} "
              f"({mc.param_count:,} parameters) on {config['dataset']}, B={train_cfg.batch} T={train_cfg.seq_len} "
              f"H={config['max_local_steps']} lr={train_cfg.lr:g} backend {self.trainer.backend.describe()}",
              file=self.out, flush=True)

    async def _on_tensor(self, event) -> None:
        dtype = "<f2" if event.header.dtype == DTYPE_F16 else "<f4"
        if event.type == "weights":
            weights = np.frombuffer(event.payload, dtype=dtype).astype(np.float32)
        else:
            weights = self.trainer.apply_update(event.payload, dtype)
        sha = f32_sha256(weights)
        self.client.check_weights(sha)  # raises RelayProtocolError when they differ
        await self.trainer.set_global(weights)
        self.version += 1
        if event.type == "update":
            self._round_line(event.message, sha)
            self.rounds_done += 1
            if self.rounds is not None and self.rounds_done >= self.rounds:
                self.finished = True

    def _round_line(self, closed: dict, sha: str) -> None:
        mine = self.local if self.local and self.local["round"] == closed["round"] else None
        local = f"{mine['loss']:.4f}" if mine else "-"
        tokens = mine["tokens"] if mine else 0
        print(f"round {closed['round']}  local loss {local}  global loss {closed['loss']:.4f}  "
              f"tokens {tokens}/{closed['tokens']}  contributors {closed['contributors']}  sha256 {sha} ok",
              file=self.out, flush=True)

    # --- rounds --------------------------------------------------------------------------------

    def _ready(self) -> bool:
        c = self.client
        return (self.trainer is not None and self.trainer.weights is not None and c.round is not None
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
        c, t = self.client, self.trainer
        key, version = (c.round, c.data_seed), self.version
        H = int(c.config["max_local_steps"])
        margin = max(0.5, float(c.config["grace_seconds"]) / 2)
        losses: list[float] = []
        steps, step_s, last_ping = 0, 0.0, time.monotonic()
        while steps < H:
            if steps and self.deadline is not None and time.monotonic() + step_s + margin > self.deadline:
                break
            began = time.monotonic()
            await t.step(key[1], steps)
            steps += 1
            step_s = max(step_s * 0.8, time.monotonic() - began)  # a cautious running estimate
            while await self._next(block=False):
                pass
            if self.version != version or (c.round, c.data_seed) != key or self.finished:
                await t.losses()  # the abandoned round's losses; set_global already reset params
                return False
            if time.monotonic() - last_ping >= PING_EVERY_S:
                losses += await t.losses()
                await self._send(c.loss_ping(losses[-1], steps * t.tokens_per_step))
                last_ping = time.monotonic()
        losses += await t.losses()
        mean_loss = sum(losses) / len(losses)
        tokens = steps * t.tokens_per_step
        self.local = {"round": key[0], "loss": mean_loss, "tokens": tokens}
        await self._send(c.loss_ping(mean_loss, tokens))
        await self._send(c.delta_frame(await t.delta_f16(), tokens=tokens, loss=mean_loss))
        self.trained = key
        return True


async def _join(args) -> int:
    name = args.name or f"{os.uname().nodename[:40]}-{os.getpid()}"
    worker = Worker(args.url, args.session, name, backend=args.backend, gpu=args.gpu, rounds=args.rounds,
                    data_dir=args.data_dir)
    code = await worker.run()
    print(f"left after {worker.rounds_done} round(s)", file=sys.stderr, flush=True)
    return code


def cmd_join(args) -> int:
    try:
        return asyncio.run(_join(args))
    except WorkerError as e:
        print(f"tabgpt: error: {e}", file=sys.stderr)
        return 1
