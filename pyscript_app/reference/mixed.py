"""Mixed precision, stated in numpy: the linear layers' products with f16 operands and f32 results.

The GPU's mixed-precision step (gpu/model_ops.py, precision "mixed"; shaders/matmul_coop.wgsl) keeps
every tensor in f32 and rounds only what enters a product to f16 (round to nearest even), then
accumulates in f32. The backward multiplies its gradient operand by gradient_scale(N) (a power of two,
gpu/coop_rules.py) before rounding and divides the result by it, which is exact: without it the mean
loss's O(1 / N) gradients would fall below f16's normal range.

    with mixed_products(gradient_scale(N)):
        loss, grad = model.loss_and_grad(cfg, flat, idx, targets)   # the mixed step's arithmetic

Where the mixed step runs the attention on the matrix units too (gpu/materialized_attention.py), its products
(the scores, P @ v and the backward's four) round their operands alike and the softmax stays f32:
attention_forward_mixed / attention_backward_mixed, swapped in by mixed_products(..., attention=True).

model.py looks ops.matmul_forward / matmul_backward (and the attention pair) up at each call, so
mixed_products swaps them while the block runs. The sums' order differs from the GPU's, so the two agree to f32
rounding of the sums, not bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from . import ops
from .ops_attention import _merge_heads, _split_heads


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


def _masked_scores(q: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """q, k (B,H,T,D) -> (S = f16(q * scale) @ f16(k).T (B,H,T,T), the causal mask (T,T), True where key <= query)."""
    T, D = q.shape[-2], q.shape[-1]
    S = to_f16(q * np.float32(1.0 / math.sqrt(D))) @ to_f16(k).swapaxes(-1, -2)
    return S, np.tril(np.ones((T, T), bool))


def attention_forward_mixed(qkv: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray]:
    """ops_attention.attention_forward on the matrix units (gpu/materialized_attention.py): the scores and P @ v
    with f16 operands, the softmax in f32. qkv (B,T,3C) -> y (B,T,C), lse (B,H,T)."""
    q, k, v = _split_heads(qkv, H)
    S, keep = _masked_scores(q, k)
    m = np.where(keep, S, -np.inf).max(axis=-1, keepdims=True)
    e = np.where(keep, np.exp(S - m), np.float32(0))
    l = e.sum(axis=-1, keepdims=True)
    return _merge_heads(to_f16(e / l) @ to_f16(v)), (m + np.log(l))[..., 0]


def attention_backward_mixed(dy: np.ndarray, qkv: np.ndarray, y: np.ndarray, lse: np.ndarray, H: int,
                             scale: float) -> np.ndarray:
    """ops_attention.attention_backward on the matrix units: P recomputed from the mixed scores and lse,
    dP = dy @ v.T, delta = rowsum(P * dP) (y is not read), and dq, dk, dv as products with f16 operands;
    the gradient operands (dy, dS) are scaled by `scale` before rounding, the results by 1 / scale
    after. dy (B,T,C), qkv (B,T,3C), lse (B,H,T) -> dqkv (B,T,3C)."""
    B, T, C3 = qkv.shape
    D = C3 // (3 * H)
    q, k, v = _split_heads(qkv, H)
    S, keep = _masked_scores(q, k)
    P = np.where(keep, np.exp(S - lse[..., None]), np.float32(0))
    g, inv = np.float32(scale), np.float32(1.0 / scale)
    dys = to_f16(dy.reshape(B, T, H, D).transpose(0, 2, 1, 3) * g)
    dP = (dys @ to_f16(v).swapaxes(-1, -2)) * inv
    dS = P * (dP - (P * dP).sum(axis=-1, keepdims=True))
    dss = to_f16(dS * g)
    unscale = np.float32(1.0 / (math.sqrt(D) * scale))
    dq = (dss @ to_f16(k)) * unscale
    dk = (dss.swapaxes(-1, -2) @ to_f16(q)) * unscale
    dv = (to_f16(P).swapaxes(-1, -2) @ dys) * inv
    return np.stack([_merge_heads(t) for t in (dq, dk, dv)], axis=2).reshape(B, T, C3).astype(np.float32)


@contextmanager
def mixed_products(scale: float, attention: bool = False) -> Iterator[None]:
    """Within the block, the reference model's products are the mixed ones (gradient scale `scale`);
    with `attention`, so are the attention's (gpu/materialized_attention.py, where the mixed step uses it)."""
    saved = ops.matmul_forward, ops.matmul_backward, ops.attention_forward, ops.attention_backward
    ops.matmul_forward = matmul_forward_mixed
    ops.matmul_backward = lambda dy, x, w: matmul_backward_mixed(dy, x, w, scale)
    if attention:
        ops.attention_forward = attention_forward_mixed
        ops.attention_backward = lambda dy, qkv, y, lse, H: attention_backward_mixed(dy, qkv, y, lse, H, scale)
    try:
        yield
    finally:
        ops.matmul_forward, ops.matmul_backward, ops.attention_forward, ops.attention_backward = saved
