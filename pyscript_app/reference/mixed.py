"""Mixed precision, stated in numpy: the linear layers' products with f16 operands and f32 results.

The GPU's mixed-precision step (gpu/model_ops.py, precision "mixed"; shaders/matmul_coop.wgsl) keeps
every tensor in f32 and rounds only what enters a product to f16 (round to nearest even), then
accumulates in f32. The backward multiplies its gradient operand by gradient_scale(N) (a power of two,
gpu/coop_rules.py) before rounding and divides the result by it, which is exact: without it the mean
loss's O(1 / N) gradients would fall below f16's normal range.

    with mixed_products(gradient_scale(N)):
        loss, grad = model.loss_and_grad(cfg, flat, idx, targets)   # the mixed step's arithmetic

model.py looks ops.matmul_forward / matmul_backward up at each call, so mixed_products swaps them for
these two while the block runs. The sums' order differs from the GPU's, so the two agree to f32
rounding of the sums, not bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from . import ops


def to_f16(x: np.ndarray) -> np.ndarray:
    """x rounded to f16 (nearest even; overflow to inf) and held as f32."""
    with np.errstate(over="ignore"):
        return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


def matmul_forward_mixed(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x (N,K), w (K,M) -> f16(x) @ f16(w) (N,M), summed in f32."""
    return to_f16(x) @ to_f16(w)


def matmul_backward_mixed(dy: np.ndarray, x: np.ndarray, w: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """dy (N,M), x (N,K), w (K,M) -> (dx (N,K), dw (K,M)) with f16 operands; dy is scaled by `scale`
    (a power of two) before rounding and the results by 1 / scale after."""
    dys = to_f16(np.asarray(dy, np.float32) * np.float32(scale))
    inv = np.float32(1.0 / scale)
    return (dys @ to_f16(w).T) * inv, (to_f16(x).T @ dys) * inv


@contextmanager
def mixed_products(scale: float) -> Iterator[None]:
    """Within the block, the reference model's products are the mixed ones (gradient scale `scale`)."""
    saved = ops.matmul_forward, ops.matmul_backward
    ops.matmul_forward = matmul_forward_mixed
    ops.matmul_backward = lambda dy, x, w: matmul_backward_mixed(dy, x, w, scale)
    try:
        yield
    finally:
        ops.matmul_forward, ops.matmul_backward = saved
