"""Native pieces for driving federated/client.py in tests: a `websockets` Link and a GPU model.

    link = await ws_link("ws://127.0.0.1:PORT/ws")                   # a client.Link
    make = gpu_model_factory(ex, tokens)                              # make_model for FederatedClient
"""

from __future__ import annotations

import asyncio
from array import array

import numpy as np

from pyscript_app.federated.client import Closed, Link
from pyscript_app.federated.gpu_model import GpuRoundModel
from pyscript_app.federated.local import session_train_config
from pyscript_app.gpu.trainer_backend import GpuBackend


class WsLink(Link):
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

    async def send(self, data) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self.ws.send(data)
        except ConnectionClosed:
            raise ConnectionError("closed") from None

    def close(self) -> None:
        self.reader.cancel()
        asyncio.ensure_future(self.ws.close())


def ws_connector(url: str):
    async def connect() -> WsLink:
        from websockets.asyncio.client import connect as ws_connect
        from websockets.exceptions import InvalidHandshake

        try:
            ws = await ws_connect(url, max_size=None, compression=None, open_timeout=5)
        except InvalidHandshake as e:
            raise ConnectionError(str(e)) from None
        return WsLink(ws)
    return connect


def random_tokens(vocab: int, n: int = 4000, seed: int = 0) -> array:
    return array("H", np.random.default_rng(seed).integers(0, vocab, n).astype(np.uint16).tobytes())


def gpu_model_factory(ex, tokens: array, made: list | None = None):
    """make_model(session config) -> a GpuRoundModel on the native executor `ex`."""
    async def make(config: dict) -> GpuRoundModel:
        cfg = session_train_config(config, "gpu", "auto")
        model = GpuRoundModel(GpuBackend(cfg.model_cfg(), cfg, ex), tokens, cfg)
        if made is not None:
            made.append(model)
        return model
    return make
