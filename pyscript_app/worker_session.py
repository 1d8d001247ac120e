"""The native worker's training side: the session's data and model, H local steps, the delta.

Numpy-only (native): the worker runs on CPython with numpy; the browser has its own glue.
No sockets here (see worker.py); everything goes through the async Backend interface, so the
numpy reference and the GPU backend are interchangeable.

Per round r (shapes: P = param_count, B = batch, T = blocksize):
    W_r        (P,) float32  the global weights, loaded into the backend with the Adam state KEPT
    steps      h = 0 .. H-1  batches at rng.batch_starts(data_seed_r, h, B, len(train), T)
    delta      (P,) float32  params_after_local_steps - W_r, sent as f16 (saturating at +-65504)
    W_{r+1}    (P,) float32  W_r + decode(u), added in float32 exactly as the relay does

The session's TrainConfig, the local learning rate and the round's batches come from
federated/local.py (pure Python), which the browser's client shares.
"""

from __future__ import annotations

import hashlib
from array import array
from pathlib import Path

import numpy as np

from .backend import Backend
from .backends import make_backend
from .config import ModelConfig, TrainConfig
from .errors import UserError
from .federated.local import LOCAL_WARMUP_STEPS, F16_MAX, local_lr, round_batch, session_train_config
from .tokenfile import load_prepared

__all__ = ["LOCAL_WARMUP_STEPS", "F16_MAX", "LocalTrainer", "f32_sha256", "load_session_data", "session_train_config"]


def load_session_data(session: dict, data_dir: str | Path | None) -> tuple[array, array]:
    """(train, val) token arrays of the session's dataset; the tokenizer must be the session's."""
    name = session["dataset"]
    tok, train, val = load_prepared(name, data_dir)
    want = session.get("tokenizer_sha256") or ""
    if want and tok.sha256 != want:
        raise UserError(f"the {name} tokenizer in {data_dir or 'the data cache'} is {tok.sha256[:12]}, "
                        f"the session trains with {want[:12]}: prepare the session's tokenizer first")
    vocab = int(session["model_config"]["vocab_size"])
    if tok.vocab_size != vocab:
        raise UserError(f"the {name} tokenizer has {tok.vocab_size} tokens, the session's model {vocab}")
    if len(train) <= int(session["blocksize"]) + 1:
        raise UserError(f"the {name} train split has {len(train)} tokens, too few for blocksize {session['blocksize']}")
    return train, val


def f32_sha256(weights: np.ndarray) -> str:
    """Hex sha256 of the f32 little-endian weight vector (what round_closed carries)."""
    return hashlib.sha256(np.ascontiguousarray(weights, dtype="<f4").data).hexdigest()


class LocalTrainer:
    """The worker's model: global weights W_r, a backend holding params and AdamW state."""

    def __init__(self, train_cfg: TrainConfig, train_tokens: array, backend: Backend | None = None):
        self.cfg = train_cfg
        self.model_cfg: ModelConfig = train_cfg.model_cfg()
        self.train_tokens = train_tokens
        self.backend = backend or make_backend(self.model_cfg, train_cfg)
        self.T = train_cfg.seq_len
        self.weights: np.ndarray | None = None  # W_r (P,) float32, the round's starting point
        self.adam_steps = 0  # AdamW steps taken by this worker, across rounds

    @property
    def tokens_per_step(self) -> int:
        return self.cfg.batch * self.T

    # --- global weights ------------------------------------------------------------------------

    async def set_global(self, weights: np.ndarray) -> None:
        """W_r := weights (P,) f32; the backend restarts from it with its AdamW moments kept."""
        if weights.shape != (self.model_cfg.param_count,):
            raise ValueError(f"weights have {weights.size} elements, the model has {self.model_cfg.param_count}")
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        params = self.weights.tobytes()
        if self.adam_steps == 0:
            await self.backend.load(params, None, None, 0)
            return
        state = await self.backend.export()
        await self.backend.load(params, state["adam_m"], state["adam_v"], state["step"])

    def apply_update(self, payload: memoryview, np_dtype: str) -> np.ndarray:
        """W_r + decode(u) in float32, the relay's exact arithmetic: (P,) float32 (not yet loaded)."""
        update = np.frombuffer(payload, dtype=np_dtype)
        return np.add(self.weights, update.astype(np.float32), dtype=np.float32)

    # --- local steps ---------------------------------------------------------------------------

    def lr(self) -> float:
        return local_lr(self.cfg, self.adam_steps)

    async def step(self, data_seed: int, local_step: int) -> None:
        """One AdamW step on the batch `local_step` of this round's data seed."""
        x, y = round_batch(self.train_tokens, data_seed, local_step, self.cfg.batch, self.T)
        await self.backend.step(x, y, self.lr())
        self.adam_steps += 1

    async def losses(self) -> list[float]:
        return await self.backend.pop_losses()

    async def delta_f16(self) -> bytes:
        """(params - W_r) as little-endian f16 bytes (P * 2), saturated so finite stays finite."""
        params = np.frombuffer((await self.backend.export())["params"], dtype=np.float32)
        delta = np.subtract(params, self.weights, dtype=np.float32)
        np.clip(delta, -F16_MAX, F16_MAX, out=delta)
        return delta.astype("<f2").tobytes()
