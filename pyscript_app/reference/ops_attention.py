"""Causal multi-head self-attention as a numpy forward/backward pair (spec of shaders/attention.wgsl).

Letters: B batch, T time, C width, H heads, D = C // H head width.

Layout of the fused projection qkv (B,T,3C): columns [q | k | v], each C wide; within each of them
head h owns the D contiguous columns h*D:(h+1)*D. So q for head h is qkv[..., h*D:(h+1)*D], k is
qkv[..., C + h*D : C + (h+1)*D] and v is qkv[..., 2C + h*D : 2C + (h+1)*D]. The output y (B,T,C)
puts head h back in columns h*D:(h+1)*D.

Per (b, h), with scale = 1/sqrt(D):
    S   = q @ k.T * scale                 (T,T) scores; S[t, s] = -inf for s > t (causal mask)
    lse = logsumexp(S, over s)            (T,)  one float per query row, kept for backward
    P   = exp(S - lse)                    (T,T) softmax probabilities (0 above the diagonal)
    y   = P @ v                           (T,D)

Backward recomputes P from q, k and lse instead of storing the (T,T) matrix, as flash attention
(and the GPU kernel) does:
    dv = P.T @ dy                         (T,D)
    dP = dy @ v.T                         (T,T)
    dS = P * (dP - rowsum(dy * y))        (T,T)  softmax backward: rowsum(P * dP) == rowsum(dy * y)
    dq = dS @ k * scale                   (T,D)
    dk = dS.T @ q * scale                 (T,D)

Heads are handled by reshaping to (B,H,T,D) and batched np.matmul: no Python loop over B or H.
"""

from __future__ import annotations

import math

import numpy as np


def _split_heads(qkv: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """qkv (B,T,3C)  ->  q, k, v each (B,H,T,D) (strided views, no copy)."""
    B, T, C3 = qkv.shape
    D = C3 // (3 * H)
    heads = qkv.reshape(B, T, 3, H, D).transpose(2, 0, 3, 1, 4)  # (3,B,H,T,D)
    return heads[0], heads[1], heads[2]


def _merge_heads(x: np.ndarray) -> np.ndarray:
    """x (B,H,T,D)  ->  (B,T,H*D) with head h in columns h*D:(h+1)*D."""
    B, H, T, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * D)


def _causal_scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """q, k (B,H,T,D)  ->  S (B,H,T,T) = q @ k.T / sqrt(D), with -inf where key s > query t."""
    T, D = q.shape[-2], q.shape[-1]
    scores = np.matmul(q, k.swapaxes(-1, -2))  # (B,H,T,T)
    scores *= 1.0 / math.sqrt(D)
    scores += _causal_bias(T, scores.dtype)  # (T,T) broadcast over B, H
    return scores


_BIAS_CACHE: dict[tuple[int, np.dtype], np.ndarray] = {}


def _causal_bias(T: int, dtype: np.dtype) -> np.ndarray:
    """(T,T): 0 on and below the diagonal, -inf above it (key s > query t). Read-only, cached."""
    key = (T, np.dtype(dtype))
    if key not in _BIAS_CACHE:
        bias = np.triu(np.full((T, T), -np.inf, dtype=dtype), k=1)
        bias.setflags(write=False)
        _BIAS_CACHE[key] = bias
    return _BIAS_CACHE[key]


def attention_forward(qkv: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray]:
    """qkv (B,T,3C), H heads  ->  y (B,T,C), lse (B,H,T) log-sum-exp of each scaled score row."""
    q, k, v = _split_heads(qkv, H)  # (B,H,T,D) each
    scores = _causal_scores(q, k)  # (B,H,T,T)
    row_max = scores.max(axis=-1, keepdims=True)  # (B,H,T,1); finite: the diagonal is unmasked
    probs = np.exp(scores - row_max)  # (B,H,T,T), exactly 0 where masked
    row_sum = probs.sum(axis=-1, keepdims=True)  # (B,H,T,1)
    probs /= row_sum
    lse = (np.log(row_sum) + row_max)[..., 0]  # (B,H,T)
    y = np.matmul(probs, v)  # (B,H,T,D)
    return _merge_heads(y), lse


def attention_backward(
    dy: np.ndarray, qkv: np.ndarray, y: np.ndarray, lse: np.ndarray, H: int
) -> np.ndarray:
    """dy (B,T,C), qkv (B,T,3C), y (B,T,C) forward output, lse (B,H,T), H  ->  dqkv (B,T,3C)."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    D = C // H
    scale = 1.0 / math.sqrt(D)
    q, k, v = _split_heads(qkv, H)  # (B,H,T,D) each
    dy_h = dy.reshape(B, T, H, D).transpose(0, 2, 1, 3)  # (B,H,T,D)
    y_h = y.reshape(B, T, H, D).transpose(0, 2, 1, 3)  # (B,H,T,D)

    probs = np.exp(_causal_scores(q, k) - lse[..., None])  # (B,H,T,T) recomputed softmax
    dv = np.matmul(probs.swapaxes(-1, -2), dy_h)  # (B,H,T,D)
    dprobs = np.matmul(dy_h, v.swapaxes(-1, -2))  # (B,H,T,T)
    row_dot = np.einsum("bhtd,bhtd->bht", dy_h, y_h)  # (B,H,T) = rowsum(P * dP)
    dscores = probs * (dprobs - row_dot[..., None])  # (B,H,T,T); 0 where masked (P = 0)
    dscores *= scale
    dq = np.matmul(dscores, k)  # (B,H,T,D)
    dk = np.matmul(dscores.swapaxes(-1, -2), q)  # (B,H,T,D)

    dqkv = np.empty((B, T, 3, H, D), dtype=dy.dtype)  # same column layout as qkv
    dqkv[:, :, 0] = dq.transpose(0, 2, 1, 3)
    dqkv[:, :, 1] = dk.transpose(0, 2, 1, 3)
    dqkv[:, :, 2] = dv.transpose(0, 2, 1, 3)
    return dqkv.reshape(B, T, C3)
