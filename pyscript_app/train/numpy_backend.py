"""The numpy reference as a training backend (CPU). Native only: imports numpy.

BLAS runs on one thread (threadpoolctl): for these model sizes a second thread costs more than it
gains, and a busy 2-core machine makes it far worse (see reference/bench.py).
"""

from __future__ import annotations

from array import array

import numpy as np

from .backend import Backend
from ..config import ModelConfig, TrainConfig
from ..reference import adamw, kvcache, model
from ..reference.dropout import Dropout
from ..reference.init import init_params


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig):
        super().__init__(model_cfg, train_cfg)
        from threadpoolctl import threadpool_limits

        self._blas_limit = threadpool_limits(limits=1)  # held for the backend's (the process's) life
        self.params = np.zeros(model_cfg.param_count, dtype=np.float32)
        self.opt = adamw.AdamW(model_cfg)
        self._losses: list[float] = []
        self._cache = None

    def _rows(self, tokens: array) -> np.ndarray:
        # (B*T,) uint16 -> (B, T) int64; T = seq_len may be shorter than the model's context.
        a = np.frombuffer(tokens, dtype=np.uint16).astype(np.int64)
        return a.reshape(-1, self.train_cfg.seq_len)

    async def init(self, seed: int) -> None:
        self.params = init_params(self.model_cfg, seed)
        self.opt = adamw.AdamW(self.model_cfg)

    async def load(self, params, adam_m, adam_v, step) -> None:
        n = self.model_cfg.param_count
        p = np.frombuffer(params, dtype=np.float32)
        if p.size != n:
            raise ValueError(f"checkpoint has {p.size} parameters, this model has {n}")
        self.params = p.copy()
        self.opt = adamw.AdamW(self.model_cfg)
        if adam_m is not None and adam_v is not None:
            self.opt.load_state_dict(
                {
                    "m": np.frombuffer(adam_m, dtype=np.float32).copy(),
                    "v": np.frombuffer(adam_v, dtype=np.float32).copy(),
                    "t": int(step),
                }
            )

    async def export(self) -> dict:
        st = self.opt.state_dict()
        return {
            "params": self.params.tobytes(),
            "adam_m": np.asarray(st["m"], dtype=np.float32).tobytes(),
            "adam_v": np.asarray(st["v"], dtype=np.float32).tobytes(),
            "step": int(st["t"]),
        }

    async def step(self, x, y, lr) -> None:
        tc = self.train_cfg
        # the masks belong to the AdamW step about to be taken (1 on the first; resumes continue)
        drop = Dropout(tc.dropout, tc.seed, self.opt.t + 1) if tc.dropout > 0 else None
        loss, grad = model.loss_and_grad(self.model_cfg, self.params, self._rows(x), self._rows(y), drop)
        self.opt.step(
            self.params, grad, lr, beta1=tc.beta1, beta2=tc.beta2, eps=tc.adam_eps,
            weight_decay=tc.weight_decay, max_norm=tc.grad_clip,
        )
        self._losses.append(float(loss))

    async def pop_losses(self) -> list[float]:
        out, self._losses = self._losses, []
        return out

    async def evaluate(self, x, y, batch) -> float:
        xs, ys = self._rows(x), self._rows(y)
        total = 0.0
        for i in range(0, len(xs), batch):
            loss, _ = model.forward(self.model_cfg, self.params, xs[i : i + batch], ys[i : i + batch])
            total += float(loss) * len(xs[i : i + batch])
        return total / len(xs)

    async def decode_reset(self) -> None:
        self._cache = kvcache.KVCache(self.model_cfg, batch=1)

    async def decode(self, token, pos) -> array:
        if self._cache is None:
            await self.decode_reset()
        logits = kvcache.decode_step(self.model_cfg, self.params, self._cache, np.array([token]), pos)
        return array("f", np.asarray(logits[0], dtype=np.float32).tobytes())
