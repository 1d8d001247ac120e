"""A federated client's model over any training Backend, with the round arithmetic in numpy.

Numpy-only (native): the `tabgpt join --backend numpy` worker's model, the counterpart of
gpu_model.GpuRoundModel (which keeps every tensor on the GPU, for the browser). Both serve the one
round loop in federated/client.py through the same interface:

    model = NumpyRoundModel(train_cfg, train_tokens)       # or NumpyRoundModel(..., backend=b)
    sha = await model.load_weights(f32_payload)   # W_r := WEIGHTS frame; params := W_r
    await model.step(data_seed, h, round * H + h) ...; await model.losses()
    delta = await model.delta_f16()               # flat f16 bytes of params - W_r (the DELTA payload)
    sha = await model.apply_update(payload, dtype) # W_{r+1} = W_r + decode(u) in f32; params := W_{r+1}

Per round r (shapes: P = param_count, B = batch, T = blocksize):
    W_r        (P,) float32  the global weights, loaded into the backend with the Adam state KEPT
    steps      h = 0 .. H-1  batches at rng.batch_starts(data_seed_r, h, B, len(train), T)
    delta      (P,) float32  params_after_local_steps - W_r, sent as f16 (saturating at +-65504)
    W_{r+1}    (P,) float32  W_r + decode(u), added in float32 exactly as the relay does
"""

from __future__ import annotations

import hashlib
from array import array

import numpy as np

from ..train.backend import Backend
from ..train.backend_choice import make_backend
from ..config import ModelConfig, TrainConfig
from .frames import DTYPE_F16, DTYPE_F32
from .local import F16_MAX, local_lr, round_batch

NP_DTYPES = {DTYPE_F16: "<f2", DTYPE_F32: "<f4"}


def f32_sha256(weights: np.ndarray) -> str:
    """Hex sha256 of the f32 little-endian weight vector (what round_closed carries)."""
    return hashlib.sha256(np.ascontiguousarray(weights, dtype="<f4").data).hexdigest()


class NumpyRoundModel:
    """Global weights W_r in numpy, and a backend holding the local params and AdamW state."""

    def __init__(self, train_cfg: TrainConfig, train_tokens: array, backend: Backend | None = None):
        self.cfg = train_cfg
        self.model_cfg: ModelConfig = train_cfg.model_cfg()
        self.train_tokens = train_tokens
        self.backend = backend or make_backend(self.model_cfg, train_cfg)
        self.T = train_cfg.seq_len
        self.weights: np.ndarray | None = None  # W_r (P,) float32, the round's starting point
        self.adam_steps = 0  # AdamW steps taken by this client, across rounds

    @property
    def tokens_per_step(self) -> int:
        return self.cfg.batch * self.T

    @property
    def param_count(self) -> int:
        return self.model_cfg.param_count

    # --- global weights ------------------------------------------------------------------------

    async def load_weights(self, payload) -> str:
        """W_r := the f32 flat weights of a WEIGHTS frame; the params restart from them. -> sha256."""
        await self.set_global(np.frombuffer(payload, dtype="<f4").astype(np.float32))
        return f32_sha256(self.weights)

    async def apply_update(self, payload, dtype: int) -> str:
        """W_{r+1} = W_r + decode(u) in float32 (the relay's exact arithmetic); params := W_{r+1}. -> sha256."""
        if dtype not in NP_DTYPES:
            raise ValueError(f"unknown update dtype {dtype}")
        update = np.frombuffer(payload, dtype=NP_DTYPES[dtype]).astype(np.float32)
        await self.set_global(np.add(self.weights, update, dtype=np.float32))
        return f32_sha256(self.weights)

    async def set_global(self, weights: np.ndarray) -> None:
        """W_r := weights (P,) f32; the backend restarts from it with its AdamW moments kept."""
        if weights.shape != (self.param_count,):
            raise ValueError(f"weights have {weights.size} elements, the model has {self.param_count}")
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        params = self.weights.tobytes()
        if self.adam_steps == 0:
            await self.backend.load(params, None, None, 0)
            return
        state = await self.backend.export()
        await self.backend.load(params, state["adam_m"], state["adam_v"], state["step"])

    # --- local steps ---------------------------------------------------------------------------

    def lr(self, global_step: int = 0) -> float:
        return local_lr(self.cfg, self.adam_steps, global_step)

    async def step(self, data_seed: int, local_step: int, global_step: int = 0) -> None:
        """One AdamW step on the batch `local_step` of this round's data seed, at the session's
        `global_step` (round * H + local_step: it sets the learning rate, federated/local.py)."""
        x, y = round_batch(self.train_tokens, data_seed, local_step, self.cfg.batch, self.T)
        await self.backend.step(x, y, self.lr(global_step))
        self.adam_steps += 1

    async def losses(self) -> list[float]:
        return await self.backend.pop_losses()

    async def delta_f16(self) -> bytes:
        """(params - W_r) as little-endian f16 bytes (P * 2), saturated so finite stays finite."""
        params = np.frombuffer((await self.backend.export())["params"], dtype=np.float32)
        delta = np.subtract(params, self.weights, dtype=np.float32)
        np.clip(delta, -F16_MAX, F16_MAX, out=delta)
        return delta.astype("<f2").tobytes()
