"""The GPT's operations as numpy forward/backward pairs: the specification of the WGSL kernels.

Each pair is the math one WGSL entry point (or one pair of them) must reproduce. Every function is
dtype-generic: it computes in the dtype of its inputs (float32 for training, float64 for gradient
checks) and never upcasts silently. Scalars are Python floats, which numpy treats as "weak" (they
take the array's dtype), so `x * 0.5` stays float32.

Letters (see config.py): B batch, T time, C width, V vocab, H heads, D = C // H head width,
N = B*T rows (the batch and time axes flattened), K/M the in/out widths of a matmul.

Backward functions take the upstream gradient first (named d<output>) and return the gradient of
every input that has one, in the order of the forward's arguments.

Attention lives in ops_attention.py (it is the longest pair) and is re-exported here.
"""

from __future__ import annotations

import math

import numpy as np

from .ops_attention import attention_backward, attention_forward

__all__ = [
    "embedding_forward",
    "embedding_backward",
    "rmsnorm_forward",
    "rmsnorm_backward",
    "matmul_forward",
    "matmul_backward",
    "relu_forward",
    "relu_backward",
    "attention_forward",
    "attention_backward",
    "crossentropy_forward_backward",
    "grad_global_norm",
    "clip_coefficient",
]


# --- embedding: x[b, t] = wte[idx[b, t]] + wpe[t] ---------------------------------------------


def embedding_forward(idx: np.ndarray, wte: np.ndarray, wpe: np.ndarray) -> np.ndarray:
    """idx (B,T) int, wte (V,C), wpe (Tmax,C) with T <= Tmax  ->  x (B,T,C)."""
    T = idx.shape[1]
    return wte[idx] + wpe[:T]  # (B,T,C) + (T,C) broadcasts over B


def embedding_backward(
    idx: np.ndarray, dx: np.ndarray, V: int, Tmax: int
) -> tuple[np.ndarray, np.ndarray]:
    """idx (B,T), dx (B,T,C)  ->  dwte (V,C), dwpe (Tmax,C).

    A token that appears several times receives the sum of its rows' gradients (a scatter-add;
    on the GPU one thread per (v, c) sums over the rows whose token is v, avoiding float atomics).
    Rows of wpe past T get zero gradient."""
    B, T, C = dx.shape
    dwte = np.zeros((V, C), dtype=dx.dtype)  # (V,C)
    np.add.at(dwte, idx.reshape(-1), dx.reshape(B * T, C))
    dwpe = np.zeros((Tmax, C), dtype=dx.dtype)  # (Tmax,C)
    dwpe[:T] = dx.sum(axis=0)  # (T,C): position t is shared by all B sequences
    return dwte, dwpe


# --- RMSNorm: y = x / sqrt(mean(x^2) + eps) * g ------------------------------------------------


def rmsnorm_forward(x: np.ndarray, g: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """x (N,C), g (C,)  ->  y (N,C), rstd (N,) = 1 / sqrt(mean(x^2) + eps).

    rstd is kept for the backward pass (one float per row)."""
    C = x.shape[-1]
    ms = np.einsum("nc,nc->n", x, x) / C  # (N,) mean of squares
    rstd = 1.0 / np.sqrt(ms + float(eps))  # (N,)
    y = x * rstd[:, None] * g  # (N,C)
    return y, rstd


def rmsnorm_backward(
    dy: np.ndarray, x: np.ndarray, g: np.ndarray, rstd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """dy (N,C), x (N,C), g (C,), rstd (N,)  ->  dx (N,C), dg (C,).

    With xhat = x * rstd (N,C) and dxhat = dy * g (N,C):
        dg = sum over rows of dy * xhat
        dx = rstd * (dxhat - xhat * mean(dxhat * xhat, over C))
    (the second term is the gradient flowing through rstd, which depends on every x in the row)."""
    C = x.shape[-1]
    xhat = x * rstd[:, None]  # (N,C)
    dg = np.einsum("nc,nc->c", dy, xhat)  # (C,)
    dxhat = dy * g  # (N,C)
    row_dot = np.einsum("nc,nc->n", dxhat, xhat) / C  # (N,)
    dx = (dxhat - xhat * row_dot[:, None]) * rstd[:, None]  # (N,C)
    return dx, dg


# --- matmul (linear layer without bias): y = x @ w ---------------------------------------------


def matmul_forward(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x (N,K), w (K,M)  ->  y (N,M)."""
    return x @ w


def matmul_backward(
    dy: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """dy (N,M), x (N,K), w (K,M)  ->  dx (N,K) = dy @ w.T, dw (K,M) = x.T @ dy."""
    return dy @ w.T, x.T @ dy


# --- ReLU ---------------------------------------------------------------------------------------


def relu_forward(x: np.ndarray) -> np.ndarray:
    """x (any shape)  ->  y = max(x, 0), same shape."""
    return np.maximum(x, 0)


def relu_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dy, x (same shape)  ->  dx = dy where x > 0 else 0 (the derivative at 0 is taken as 0).

    Written as a multiply by the mask (10x faster than np.where here); equal for finite dy."""
    return dy * (x > 0)


# --- fused softmax + cross-entropy --------------------------------------------------------------


def crossentropy_forward_backward(
    logits: np.ndarray, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """logits (N,V), targets (N,) int  ->  losses (N,), dlogits (N,V).

    losses[n]  = logsumexp(logits[n]) - logits[n, targets[n]]     (nats)
    dlogits    = (softmax(logits) - onehot(targets)) / N           = d(mean(losses)) / dlogits
    The max is subtracted before exp so large logits cannot overflow."""
    N = logits.shape[0]
    rows = np.arange(N)
    row_max = logits.max(axis=1, keepdims=True)  # (N,1)
    dlogits = logits - row_max  # (N,V) shifted logits, all <= 0
    np.exp(dlogits, out=dlogits)  # (N,V) unnormalised probabilities
    row_sum = dlogits.sum(axis=1, keepdims=True)  # (N,1)
    losses = (np.log(row_sum) + row_max)[:, 0] - logits[rows, targets]  # (N,) lse - target logit
    dlogits *= 1.0 / (row_sum * N)  # (N,V) softmax / N
    dlogits[rows, targets] -= 1.0 / N  # minus onehot / N
    return losses, dlogits


# --- gradient clipping --------------------------------------------------------------------------


def grad_global_norm(grads: np.ndarray) -> float:
    """grads (P,) flat  ->  sqrt(sum(grads^2)) as a Python float (accumulated in grads' dtype)."""
    return math.sqrt(float(np.dot(grads, grads)))


def clip_coefficient(norm: float, max_norm: float) -> float:
    """The factor the gradient is multiplied by: min(1, max_norm / (norm + 1e-6))."""
    return min(1.0, max_norm / (norm + 1e-6))
