"""Parameter init in numpy, bit-identical to pyscript_app.rng (pure Python) and shaders/init.wgsl.

The per-tensor standard deviations (init_std, init_constant) live in pyscript_app/init_rule.py,
pure Python, so the GPU backend shares them; they are re-exported here.
"""

from __future__ import annotations

import numpy as np

from ..config import ModelConfig
from ..init_rule import init_constant, init_std  # noqa: F401  (the rule's home; re-exported)
from ..rng import init_scale


def _pcg(x: np.ndarray) -> np.ndarray:
    # uint32 arithmetic wraps mod 2**32 in numpy, exactly as in WGSL.
    state = x * np.uint32(747796405) + np.uint32(2891336453)
    word = ((state >> ((state >> np.uint32(28)) + np.uint32(4))) ^ state) * np.uint32(277803737)
    return (word >> np.uint32(22)) ^ word


def init_tensor(seed: int, tensor_index: int, n: int, std: float) -> np.ndarray:
    """(n,) float32, identical bit for bit to rng.init_values(seed, tensor_index, n, std)."""
    with np.errstate(over="ignore"):
        key = _pcg(np.array([(int(_pcg(np.array([seed & 0xFFFFFFFF], np.uint32))[0])) ^ tensor_index], np.uint32))[0]
        base = np.arange(n, dtype=np.uint32) * np.uint32(4)
        s = np.zeros(n, dtype=np.uint32)
        for j in range(4):
            s += _pcg(key ^ _pcg(base + np.uint32(j))) >> np.uint32(10)
    z = s.astype(np.float32) * np.float32(2.0**-22) - np.float32(2.0)  # exact
    return z * np.float32(init_scale(std))  # one rounding


def init_params(cfg: ModelConfig, seed: int) -> np.ndarray:
    """The flat float32 parameter vector (layout: config.ModelConfig.param_shapes)."""
    out = np.empty(cfg.param_count, dtype=np.float32)
    off = 0
    for idx, (name, shape) in enumerate(cfg.param_shapes()):
        n = int(np.prod(shape))
        std = init_std(name, shape)
        out[off : off + n] = init_tensor(seed, idx, n, std) if std else init_constant(name)
        off += n
    return out
