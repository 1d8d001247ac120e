"""Native pieces for driving federated/client.py in tests: random tokens and a GPU round model.
(The `websockets` connection is the native worker's: pyscript_app.federated.worker.ws_connector.)

    make = gpu_model_factory(ex, tokens)                              # make_model for FederatedClient
"""

from __future__ import annotations

from array import array

import numpy as np

from pyscript_app.federated.gpu_model import GpuRoundModel
from pyscript_app.federated.local import session_train_config
from pyscript_app.gpu.trainer_backend import GpuBackend


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
