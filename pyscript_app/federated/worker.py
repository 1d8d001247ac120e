"""`tabgpt join URL --session ID`: a native worker that trains in a federated session.

Native only: the worker is the browser's round loop (federated/client.FederatedClient) over a
`websockets` connection (WsLink), with a native model: federated/numpy_model.NumpyRoundModel for
`--backend numpy`, federated/gpu_model.GpuRoundModel (the browser's, on wgpu-py) for `--backend
gpu`. So tabs and native workers take the same steps, send the same frames and resume alike.
What this module adds is the terminal: the join line and one line per round on stdout, the
rest (reconnects, rejects, relay errors) on stderr.

Round line:  round R  local loss L  global loss G  tokens mine/all  contributors K  sha256 S ok

Exit codes: 0 after --rounds rounds or when the session closes; 2 for a user error (unknown
session, tokenizer differs, bad URL); 1 when the relay is unreachable or the weights diverge.
"""

from __future__ import annotations

import asyncio
import os
import sys
from urllib.parse import urlsplit, urlunsplit

from ..errors import UserError
from .client import REFUSALS, Closed, FederatedClient, FederatedError, Link
from .local import session_train_config
from .worker_session import load_session_data

RECONNECT_TRIES = 5
BACKOFF_S = 0.5  # 0.5, 1, 2, 4, 8 s between tries


class WorkerError(RuntimeError):
    """The worker cannot go on (relay gone, weights diverged): one line, exit 1."""


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


class WsLink(Link):
    """A client.Link over a `websockets` asyncio connection: a reader task fills the inbox."""

    def __init__(self, ws) -> None:
        super().__init__()
        self.ws = ws
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for frame in self.ws:
                self.inbox.put_nowait(frame)
        except ConnectionClosed:
            pass
        self.inbox.put_nowait(Closed(self.ws.close_code, self.ws.close_reason or ""))

    async def send(self, data: str | bytes) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self.ws.send(data)
        except ConnectionClosed:
            raise ConnectionError("closed") from None

    def close(self) -> None:
        self.reader.cancel()
        asyncio.ensure_future(self.ws.close())


def ws_connector(url: str, open_timeout: float = 10):
    """connect() for FederatedClient: a WsLink to `url`; a failed handshake is a ConnectionError
    (retried), a malformed URL a UserError (not retried)."""
    async def connect() -> WsLink:
        from websockets.asyncio.client import connect as ws_connect
        from websockets.exceptions import InvalidHandshake, InvalidURI

        try:
            ws = await ws_connect(url, max_size=None, compression=None, open_timeout=open_timeout,
                                  ping_interval=20, ping_timeout=60)
        except InvalidURI as e:
            raise UserError(f"bad relay URL: {e}") from None
        except (InvalidHandshake, asyncio.TimeoutError) as e:
            raise ConnectionError(f"{type(e).__name__}: {e}") from None
        return WsLink(ws)
    return connect


def native_model_factory(backend: str, gpu: str, data_dir: str | None, on_made=None):
    """make_model(session config) for FederatedClient: the session's data on the chosen backend."""
    async def make(config: dict):
        cfg = session_train_config(config, backend, gpu)
        train, _val = load_session_data(config, data_dir)
        if backend == "gpu":
            from .gpu_model import GpuRoundModel
            from ..gpu.trainer_backend import open_gpu_backend

            model = GpuRoundModel(open_gpu_backend(cfg.model_cfg(), cfg), train, cfg)
        else:
            from .numpy_model import NumpyRoundModel

            model = NumpyRoundModel(cfg, train)
        if on_made is not None:
            on_made(config, cfg, model)
        return model
    return make


class Worker:
    """A FederatedClient that reports to a terminal (`out`: join and round lines; stderr: the rest)."""

    def __init__(self, url: str, session_id: str, name: str, backend: str = "numpy", gpu: str = "auto",
                 rounds: int | None = None, data_dir: str | None = None, out=None, join_secret: str | None = None):
        self.out = out or sys.stdout
        self.fc = FederatedClient(ws_connector(ws_url(url)), session_id, name,
                                  native_model_factory(backend, gpu, data_dir, self._joined), self._notify,
                                  rounds=rounds, reconnect_tries=RECONNECT_TRIES, backoff_s=BACKOFF_S,
                                  join_secret=join_secret)

    @property
    def rounds_done(self) -> int:
        return self.fc.rounds_done

    async def run(self) -> int:
        try:
            await self.fc.run()
        except FederatedError as e:
            if e.reason == "refused":
                raise UserError(str(e)) from None
            raise WorkerError(str(e)) from None
        return 0

    def _joined(self, config: dict, cfg, model) -> None:
        c = self.fc.client
        print(f"joined session {c.session_id[:8]} as {c.client_id[:8]}: {config['model']} "
              f"({model.param_count:,} parameters) on {config['dataset']}, B={cfg.batch} T={cfg.seq_len} "
              f"H={config['max_local_steps']} lr={cfg.lr:g} backend {model.backend.describe()}",
              file=self.out, flush=True)

    def _notify(self, kind: str, info: dict) -> None:
        if kind == "round":
            local = "-" if info["local_loss"] is None else f"{info['local_loss']:.4f}"
            print(f"round {info['round']}  local loss {local}  global loss {info['loss']:.4f}  "
                  f"tokens {info['local_tokens']}/{info['tokens']}  contributors {info['contributors']}  "
                  f"sha256 {info['sha256']} ok", file=self.out, flush=True)
        elif kind == "joined" and info["resumed"]:
            print(f"resumed as client {info['client_id'][:8]} at round {info['round']}", file=sys.stderr, flush=True)
        elif kind == "disconnected":
            what = "relay connection lost" if info.get("reached", True) else "cannot connect to the relay"
            print(f"{what} ({info['reason']}); retrying in {info['retry_in_s']:.1f} s", file=sys.stderr, flush=True)
        elif kind == "message" and info.get("type") == "submit_reject":
            print(f"delta for round {self.fc.client.submitted_round} rejected: {info['reason']} "
                  f"({info.get('message', '')})", file=sys.stderr, flush=True)
        elif kind == "message" and info.get("type") == "error" and info.get("reason") not in REFUSALS:
            print(f"relay error: {info.get('reason')}: {info.get('message', '')}", file=sys.stderr, flush=True)


async def _join(args) -> int:
    name = args.name or f"{os.uname().nodename[:40]}-{os.getpid()}"
    worker = Worker(args.url, args.session, name, backend=args.backend, gpu=args.gpu, rounds=args.rounds,
                    data_dir=args.data_dir, join_secret=args.join_secret)
    code = await worker.run()
    print(f"left after {worker.rounds_done} round(s)", file=sys.stderr, flush=True)
    return code


def cmd_join(args) -> int:
    try:
        return asyncio.run(_join(args))
    except WorkerError as e:
        print(f"tabgpt: error: {e}", file=sys.stderr)
        return 1
