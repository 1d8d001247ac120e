"""A federated client's model on the GPU: the round's global weights W_r beside the local params.

Pure Python over the Executor interface, so it runs in the browser (WebGPU through Pyodide) and
natively (wgpu-py) alike. Tensors stay on the GPU; per round the only transfers are the f16 delta
out (2 bytes per parameter), the update in (2), and the f32 weights read once for their sha256.

    model = GpuRoundModel(backend, train_tokens, train_cfg)      # backend: a gpu.GpuBackend
    sha = await model.load_weights(f32_payload)      # W_r := WEIGHTS frame; params := W_r
    await model.step(data_seed, h, round * H + h) ...; await model.losses()
    delta = await model.delta_f16()                  # flat f16 bytes of params - W_r (the DELTA payload)
    sha = await model.apply_update(payload, dtype)   # W_{r+1} = W_r + decode(u) in f32; params := W_{r+1}

Buffers (padded layout, gpu/layout.py; P' = padded_count):
    backend.params  (P',) f32   the local params; AdamW's m, v and step count are NEVER reset by a
                                new W (the Adam state carries across rounds, as in the native worker)
    start           (P',) f32   W_r
    pairs           (P'/2,) u32 f16 pairs: the delta out, the update in (shaders/federated.wgsl)
Only a client that has not stepped yet starts its AdamW moments at zero on its first weights.
"""

from __future__ import annotations

import hashlib
from array import array
from typing import Awaitable, Callable

from ..config import TrainConfig
from .frames import DTYPE_F16, DTYPE_F32, ITEMSIZE
from ..gpu.layout import F32
from ..gpu.trainer_backend import GpuBackend
from .local import local_lr, round_batch
from .padding import to_flat, to_padded

Digest = Callable[[bytes], Awaitable[str]]


async def hashlib_sha256(data: bytes) -> str:
    """Hex sha256 with Python's hashlib (the browser passes Web Crypto's digest instead)."""
    return hashlib.sha256(data).hexdigest()


class GpuRoundModel:
    def __init__(self, backend: GpuBackend, train_tokens: array, cfg: TrainConfig, digest: Digest = hashlib_sha256):
        self.backend, self.ex, self.layout = backend, backend.ex, backend.layout
        self.train_tokens, self.cfg, self.digest = train_tokens, cfg, digest
        self.T = cfg.seq_len
        self.start = self.ex.alloc(self.layout.padded_nbytes, label="round_start")
        self.pairs = self.ex.alloc(self.layout.padded_count * ITEMSIZE[DTYPE_F16], label="f16_pairs")
        self._f32_update = None  # allocated for sessions that broadcast f32 updates
        self.adam_steps = 0  # AdamW steps this client took, across rounds

    @property
    def tokens_per_step(self) -> int:
        return self.cfg.batch * self.T

    @property
    def param_count(self) -> int:
        return self.layout.flat_count

    # -- global weights ---------------------------------------------------------------------
    async def load_weights(self, payload) -> str:
        """W_r := the f32 flat weights of a WEIGHTS frame; the params restart from them. -> sha256."""
        padded = to_padded(self.layout, payload, F32)
        if self.adam_steps == 0:
            await self.backend.load(bytes(memoryview(payload).cast("B")), None, None, 0)
        else:
            self.ex.write(self.backend.params, padded)
        self.ex.write(self.start, padded)
        return await self.weights_sha256()

    async def apply_update(self, payload, dtype: int) -> str:
        """W_{r+1} = W_r + decode(u), in f32 on the GPU; the params restart from it. -> sha256."""
        ex, n = self.ex, self.layout.padded_count
        if dtype == DTYPE_F16:
            ex.write(self.pairs, to_padded(self.layout, payload, ITEMSIZE[DTYPE_F16]))
            ex.dispatch("apply_update_f16", [self.pairs, self.start, self.backend.params], {"n": n})
        elif dtype == DTYPE_F32:
            if self._f32_update is None:
                self._f32_update = ex.alloc(self.layout.padded_nbytes, label="f32_update")
            ex.write(self._f32_update, to_padded(self.layout, payload, F32))
            ex.dispatch("add_inplace", [self.start, self._f32_update], {"n": n})
            ex.copy(self.start, self.backend.params)
        else:
            raise ValueError(f"unknown update dtype {dtype}")
        ex.submit()
        return await self.weights_sha256()

    async def weights(self) -> bytes:
        """W_r as flat f32 little-endian bytes (what a WEIGHTS frame carries)."""
        return to_flat(self.layout, await self.ex.read(self.start), F32)

    async def weights_sha256(self) -> str:
        return await self.digest(await self.weights())

    # -- local steps ------------------------------------------------------------------------
    async def step(self, data_seed: int, local_step: int, global_step: int = 0) -> None:
        """One AdamW step on batch `local_step` of this round's data seed, at the session's
        `global_step` (round * H + local_step: it sets the learning rate, federated/local.py)."""
        x, y = round_batch(self.train_tokens, data_seed, local_step, self.cfg.batch, self.T)
        await self.backend.step(x, y, local_lr(self.cfg, self.adam_steps, global_step))
        self.adam_steps += 1

    async def losses(self) -> list[float]:
        return await self.backend.pop_losses()

    async def delta_f16(self) -> bytes:
        """(params - W_r) as flat little-endian f16 bytes (P * 2), saturated at +-65504, on the GPU."""
        self.ex.dispatch("delta_f16", [self.backend.params, self.start, self.pairs], {"n": self.layout.padded_count})
        return to_flat(self.layout, await self.ex.read(self.pairs), ITEMSIZE[DTYPE_F16])
