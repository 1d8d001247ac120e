"""Parameter init in numpy, bit-identical to pyscript_app.rng (pure Python) and shaders/init.wgsl.

Per-tensor standard deviations (documented in the training lesson):
    wte, wpe        0.02 * sqrt(3)-scaled Irwin-Hall draws (approximately normal, std 0.02)
    qkv, fc         1 / sqrt(fan_in)       (fan_in = C)
    lm_head         0.1 / sqrt(C)          initial logits have std ~0.1, so loss ~ ln(V)
    proj, fc_proj   0                      residual branches start as the identity
    ln*, lnf        1                      RMSNorm gains
"""

from __future__ import annotations

import numpy as np

from ..config import ModelConfig
from ..rng import init_scale


def init_std(name: str, shape: tuple[int, ...]) -> float | None:
    """Standard deviation for a tensor, or None for the constant-initialised ones."""
    base = name.split(".")[-1]
    if base in ("wte", "wpe"):
        return 0.02
    if base in ("qkv", "fc"):
        return shape[0] ** -0.5
    if base == "lm_head":
        return 0.1 * shape[0] ** -0.5
    return None


def init_constant(name: str) -> float:
    base = name.split(".")[-1]
    return 1.0 if base.startswith("ln") else 0.0


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
