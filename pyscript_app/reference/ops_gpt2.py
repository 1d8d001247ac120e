"""GPT-2's own operations as numpy forward/backward pairs: the specification of its WGSL kernels.

GPT-2 shares embedding, attention and the fused softmax + cross-entropy with our model (ops.py,
ops_attention.py); what differs is here:
    layernorm   y = (x - mean) / sqrt(var + eps) * w + b           (ours: RMSNorm, no shift)
    gelu        y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (ours: ReLU)
    linear      y = x @ w + b                                      (ours: no bias)
    tied head   logits = x @ wte[:V].T                             (ours: a separate lm_head)

Conventions as in ops.py: every function computes in the dtype of its inputs (float32 to run,
float64 for gradient checks); Python-float constants are "weak" scalars and keep that dtype.
Backward functions take the upstream gradient first (d<output>) and return the gradients of the
forward's array inputs, in the order of the forward's arguments.

Letters: N rows (= B*T), C width, K/M the in/out widths of a linear layer, V the real vocabulary,
Vp >= V the rows of the (padded) token embedding.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "layernorm_forward",
    "layernorm_backward",
    "gelu_forward",
    "gelu_backward",
    "linear_forward",
    "linear_backward",
    "tied_head_forward",
    "tied_head_backward",
]


# --- LayerNorm: y = (x - mean) * rstd * w + b ---------------------------------------------------


def layernorm_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (N,C), w (C,), b (C,)  ->  y (N,C), mean (N,), rstd (N,) = 1 / sqrt(var + eps).

    var is the biased variance (divide by C), as torch.nn.LayerNorm. It is computed from the
    centred values (two passes), not as mean(x^2) - mean^2, which cancels badly in float32 when
    |mean| >> std. mean and rstd are kept for the backward pass (two floats per row)."""
    C = x.shape[-1]
    mean = x.mean(axis=-1)  # (N,)
    xc = x - mean[:, None]  # (N,C) centred
    var = np.einsum("nc,nc->n", xc, xc) / C  # (N,)
    rstd = 1.0 / np.sqrt(var + float(eps))  # (N,)
    y = xc * rstd[:, None] * w + b  # (N,C)
    return y, mean, rstd


def layernorm_backward(
    dy: np.ndarray, x: np.ndarray, w: np.ndarray, mean: np.ndarray, rstd: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dy (N,C), x (N,C), w (C,), mean (N,), rstd (N,)  ->  dx (N,C), dw (C,), db (C,).

    With xhat = (x - mean) * rstd (N,C) and dxhat = dy * w (N,C):
        db = sum over rows of dy
        dw = sum over rows of dy * xhat
        dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))     means over C
    The two subtracted means are the gradient flowing through the row's mean and through its rstd;
    both depend on every x in the row (llm.c's layernorm_backward, the same three terms)."""
    xhat = (x - mean[:, None]) * rstd[:, None]  # (N,C)
    db = dy.sum(axis=0)  # (C,)
    dw = np.einsum("nc,nc->c", dy, xhat)  # (C,)
    dxhat = dy * w  # (N,C)
    mean_dxhat = dxhat.mean(axis=-1)  # (N,)
    mean_dxhat_xhat = np.einsum("nc,nc->n", dxhat, xhat) / x.shape[-1]  # (N,)
    dx = (dxhat - mean_dxhat[:, None] - xhat * mean_dxhat_xhat[:, None]) * rstd[:, None]  # (N,C)
    return dx, dw, db


# --- GELU, tanh approximation (GPT-2's "gelu_new") ----------------------------------------------

_GELU_K = math.sqrt(2.0 / math.pi)  # sqrt(2/pi) ~ 0.7978845608
_GELU_A = 0.044715


def gelu_forward(x: np.ndarray) -> np.ndarray:
    """x (any shape)  ->  y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), same shape.

    GPT-2 was trained with this approximation, not the exact x * Phi(x); its weights expect it
    (the two differ by up to 4.7e-4, near x = 2.7: enough to miss a 1e-4 logits check)."""
    u = _GELU_K * (x + _GELU_A * x * x * x)  # same shape as x
    return 0.5 * x * (1.0 + np.tanh(u))


def gelu_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dy, x (same shape)  ->  dx = dy * gelu'(x).

    With t = tanh(u) and du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2):
        gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx
    x is the forward's input: the backward recomputes t rather than storing it (one tanh)."""
    x2 = x * x  # same shape as x
    t = np.tanh(_GELU_K * x * (1.0 + _GELU_A * x2))
    du = _GELU_K * (1.0 + (3.0 * _GELU_A) * x2)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


# --- linear layer with bias: y = x @ w + b ------------------------------------------------------


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x (N,K), w (K,M), b (M,)  ->  y (N,M). On the GPU the bias is added in the matmul's epilogue
    (as each output tile is written), so it costs no extra pass over y."""
    return x @ w + b


def linear_backward(
    dy: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dy (N,M), x (N,K), w (K,M)  ->  dx (N,K) = dy @ w.T, dw (K,M) = x.T @ dy, db (M,) = sum_n dy.

    The bias is added to every row, so its gradient is the column sum of dy."""
    return dy @ w.T, x.T @ dy, dy.sum(axis=0)


# --- LM head tied to the token embedding: logits = x @ wte[:V].T --------------------------------


def tied_head_forward(x: np.ndarray, wte: np.ndarray, V: int) -> np.ndarray:
    """x (N,C), wte (Vp,C) with Vp >= V  ->  logits (N,V) = x @ wte[:V].T.

    The head reuses the embedding matrix, read as (C,V) through a transpose (no copy). Only the V
    real rows are scored: a padding row never becomes a logit, so it can never get probability."""
    return x @ wte[:V].T


def tied_head_backward(
    dlogits: np.ndarray, x: np.ndarray, wte: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """dlogits (N,V), x (N,C), wte (Vp,C)  ->  dx (N,C), dwte (Vp,C).

    dwte is this head's share of wte's gradient (rows V..Vp-1 zero); the model adds the embedding
    lookup's share (ops.embedding_backward), since both read the same matrix."""
    V = dlogits.shape[1]
    dx = dlogits @ wte[:V]  # (N,C)
    dwte = np.zeros(wte.shape, dtype=dlogits.dtype)  # (Vp,C)
    dwte[:V] = dlogits.T @ x  # (V,C)
    return dx, dwte
