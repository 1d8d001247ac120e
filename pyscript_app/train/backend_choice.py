"""Pick a training backend by name (native host)."""

from __future__ import annotations

from .backend import Backend
from ..config import ModelConfig, TrainConfig


def make_backend(model_cfg: ModelConfig, train_cfg: TrainConfig) -> Backend:
    if train_cfg.backend == "numpy":
        from .numpy_backend import NumpyBackend

        return NumpyBackend(model_cfg, train_cfg)
    if train_cfg.backend == "gpu":
        from ..gpu.trainer_backend import open_gpu_backend

        return open_gpu_backend(model_cfg, train_cfg)
    raise ValueError(f"unknown backend {train_cfg.backend!r}")
