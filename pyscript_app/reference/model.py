"""The reference GPT: forward with an explicit activation cache, then backward through every op.

No autograd library: loss_and_grad runs the ops of ops.py forward, keeping what each backward needs,
then calls the backward functions in reverse order. This is exactly the sequence of kernels a GPU
training step records.

Architecture (pre-norm, no biases; letters as in config.py, N = B*T):
    x = drop(wte[idx] + wpe[:T])                                 (B,T,C)
    for each layer:
        x = x + drop(attn(rmsnorm(x) * ln1 @ qkv) @ proj)         causal, H heads, scale 1/sqrt(D)
        x = x + drop(relu(rmsnorm(x) * ln2 @ fc) @ fc_proj)
    logits = rmsnorm(x) * lnf @ lm_head                          (B,T,V)
    loss = mean cross-entropy of logits against targets           (nats per token)

drop() is inverted dropout (reference/dropout.py) when a training step passes `dropout`, else the
identity (evaluation, sampling, and every run with dropout 0).

All activations are computed in the dtype of the flat parameter vector (float32 for training,
float64 for gradient checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import ModelConfig
from .. import rng
from . import ops
from .dropout import Dropout, dropout_backward, dropout_forward


def unflatten(cfg: ModelConfig, flat: np.ndarray) -> dict[str, np.ndarray]:
    """name -> view of the flat vector with the tensor's shape (no copies: writes go through)."""
    if flat.shape != (cfg.param_count,):
        raise ValueError(f"flat vector has shape {flat.shape}, expected ({cfg.param_count},)")
    return {
        name: flat[off : off + int(np.prod(shape))].reshape(shape)
        for name, (off, shape) in cfg.param_offsets().items()
    }


@dataclass
class LayerCache:
    """What one block's backward needs (N = B*T rows)."""

    x_in: np.ndarray  # (N,C) block input (residual stream)
    rstd1: np.ndarray  # (N,)
    xn1: np.ndarray  # (N,C) rmsnorm(x_in) * ln1
    qkv: np.ndarray  # (B,T,3C)
    att: np.ndarray  # (B,T,C) attention output, before proj
    lse: np.ndarray  # (B,H,T)
    x_mid: np.ndarray  # (N,C) residual stream after the attention branch
    rstd2: np.ndarray  # (N,)
    xn2: np.ndarray  # (N,C) rmsnorm(x_mid) * ln2
    fc_pre: np.ndarray  # (N,4C) before ReLU
    fc_act: np.ndarray  # (N,4C) after ReLU


@dataclass
class ForwardCache:
    """Activations of one forward pass, kept for backward."""

    idx: np.ndarray  # (B,T) int
    layers: list[LayerCache] = field(default_factory=list)
    x_final: np.ndarray | None = None  # (N,C) residual stream entering the final norm
    rstdf: np.ndarray | None = None  # (N,)
    xnf: np.ndarray | None = None  # (N,C) rmsnorm(x_final) * lnf
    logits: np.ndarray | None = None  # (B,T,V)
    losses: np.ndarray | None = None  # (N,) per-token loss, when targets were given
    dlogits: np.ndarray | None = None  # (N,V) d(mean loss)/dlogits, when targets were given
    dropout: Dropout | None = None  # the step's dropout, None = none
    keep: dict[int, np.ndarray] = field(default_factory=dict)  # site -> (N*C,) bool mask (rng.py sites)

    def drop(self, x: np.ndarray, site: int) -> np.ndarray:
        """x (N,C) or (B,T,C) -> dropout of site `site` (x itself when not dropping)."""
        if self.dropout is None:
            return x
        self.keep[site] = self.dropout.mask(site, x.size)
        return dropout_forward(x, self.keep[site], self.dropout.scale)

    def drop_grad(self, dy: np.ndarray, site: int) -> np.ndarray:
        """The backward of drop(): the same mask and scale applied to the upstream gradient."""
        if self.dropout is None:
            return dy
        return dropout_backward(dy, self.keep[site], self.dropout.scale)


def _forward_cached(
    cfg: ModelConfig, flat: np.ndarray, idx: np.ndarray, targets: np.ndarray | None,
    dropout: Dropout | None = None,
) -> ForwardCache:
    idx = np.asarray(idx)
    B, T = idx.shape
    if T > cfg.block_size:
        raise ValueError(f"sequence length {T} exceeds block_size {cfg.block_size}")
    N, C, H = B * T, cfg.n_embd, cfg.n_head
    p = unflatten(cfg, flat)
    cache = ForwardCache(idx=idx, dropout=dropout if dropout is not None and dropout.p > 0 else None)

    x = ops.embedding_forward(idx, p["wte"], p["wpe"]).reshape(N, C)  # (N,C)
    x = cache.drop(x, rng.DROPOUT_SITE_EMBEDDING)  # (N,C)
    for l in range(cfg.n_layer):
        pre = f"h{l}."
        xn1, rstd1 = ops.rmsnorm_forward(x, p[pre + "ln1"], cfg.rms_eps)  # (N,C), (N,)
        qkv = ops.matmul_forward(xn1, p[pre + "qkv"]).reshape(B, T, 3 * C)  # (B,T,3C)
        att, lse = ops.attention_forward(qkv, H)  # (B,T,C), (B,H,T)
        branch = ops.matmul_forward(att.reshape(N, C), p[pre + "proj"])  # (N,C)
        x_mid = x + cache.drop(branch, rng.dropout_site(l, "attn"))  # (N,C)
        xn2, rstd2 = ops.rmsnorm_forward(x_mid, p[pre + "ln2"], cfg.rms_eps)  # (N,C), (N,)
        fc_pre = ops.matmul_forward(xn2, p[pre + "fc"])  # (N,4C)
        fc_act = ops.relu_forward(fc_pre)  # (N,4C)
        branch = ops.matmul_forward(fc_act, p[pre + "fc_proj"])  # (N,C)
        x_out = x_mid + cache.drop(branch, rng.dropout_site(l, "mlp"))  # (N,C)
        cache.layers.append(
            LayerCache(x, rstd1, xn1, qkv, att, lse, x_mid, rstd2, xn2, fc_pre, fc_act)
        )
        x = x_out

    cache.x_final = x
    cache.xnf, cache.rstdf = ops.rmsnorm_forward(x, p["lnf"], cfg.rms_eps)  # (N,C), (N,)
    logits = ops.matmul_forward(cache.xnf, p["lm_head"])  # (N,V)
    cache.logits = logits.reshape(B, T, cfg.vocab_size)
    if targets is not None:
        cache.losses, cache.dlogits = ops.crossentropy_forward_backward(
            logits, np.asarray(targets).reshape(N)
        )
    return cache


def forward(
    cfg: ModelConfig, flat: np.ndarray, idx: np.ndarray, targets: np.ndarray | None = None,
    dropout: Dropout | None = None,
) -> tuple[float | None, np.ndarray | ForwardCache]:
    """idx (B,T) int, targets (B,T) int or None; dropout: a training step's (None = no dropout).

    Without targets: (None, logits (B,T,V)). With targets: (mean loss as a Python float,
    ForwardCache) — the cache holds logits, per-token losses and everything backward needs."""
    cache = _forward_cached(cfg, flat, idx, targets, dropout)
    if targets is None:
        return None, cache.logits
    return float(cache.losses.mean()), cache


def logits(cfg: ModelConfig, flat: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """idx (B,T)  ->  logits (B,T,V)."""
    return _forward_cached(cfg, flat, idx, None).logits


def backward(cfg: ModelConfig, flat: np.ndarray, cache: ForwardCache) -> np.ndarray:
    """Gradient of the mean loss w.r.t. the flat vector: (P,) in flat's dtype, same layout."""
    if cache.dlogits is None:
        raise ValueError("backward needs a forward pass that was given targets")
    B, T = cache.idx.shape
    N, C, H = B * T, cfg.n_embd, cfg.n_head
    p = unflatten(cfg, flat)
    grad = np.zeros_like(flat)
    g = unflatten(cfg, grad)  # views: writing g[name][...] fills the flat gradient

    dxnf, g["lm_head"][...] = ops.matmul_backward(cache.dlogits, cache.xnf, p["lm_head"])
    dx, g["lnf"][...] = ops.rmsnorm_backward(dxnf, cache.x_final, p["lnf"], cache.rstdf)  # (N,C)

    for l in reversed(range(cfg.n_layer)):
        pre, lc = f"h{l}.", cache.layers[l]
        # MLP branch: x_out = x_mid + relu(xn2 @ fc) @ fc_proj; dx is d(x_out), (N,C)
        dbranch = cache.drop_grad(dx, rng.dropout_site(l, "mlp"))  # (N,C) d(branch before dropout)
        dfc_act, g[pre + "fc_proj"][...] = ops.matmul_backward(dbranch, lc.fc_act, p[pre + "fc_proj"])
        dfc_pre = ops.relu_backward(dfc_act, lc.fc_pre)  # (N,4C)
        dxn2, g[pre + "fc"][...] = ops.matmul_backward(dfc_pre, lc.xn2, p[pre + "fc"])
        dx_branch, g[pre + "ln2"][...] = ops.rmsnorm_backward(dxn2, lc.x_mid, p[pre + "ln2"], lc.rstd2)
        dx += dx_branch  # (N,C) d(x_mid): the residual path plus the branch
        # attention branch: x_mid = x_in + attn(xn1 @ qkv) @ proj
        dbranch = cache.drop_grad(dx, rng.dropout_site(l, "attn"))  # (N,C)
        datt, g[pre + "proj"][...] = ops.matmul_backward(dbranch, lc.att.reshape(N, C), p[pre + "proj"])
        dqkv = ops.attention_backward(datt.reshape(B, T, C), lc.qkv, lc.att, lc.lse, H)  # (B,T,3C)
        dxn1, g[pre + "qkv"][...] = ops.matmul_backward(dqkv.reshape(N, 3 * C), lc.xn1, p[pre + "qkv"])
        dx_branch, g[pre + "ln1"][...] = ops.rmsnorm_backward(dxn1, lc.x_in, p[pre + "ln1"], lc.rstd1)
        dx += dx_branch  # (N,C) d(x_in)

    dx = cache.drop_grad(dx, rng.DROPOUT_SITE_EMBEDDING)  # (N,C) d(wte[idx] + wpe)
    g["wte"][...], g["wpe"][...] = ops.embedding_backward(
        cache.idx, dx.reshape(B, T, C), cfg.vocab_size, cfg.block_size
    )
    return grad


def loss_and_grad(
    cfg: ModelConfig, flat: np.ndarray, idx: np.ndarray, targets: np.ndarray, dropout: Dropout | None = None
) -> tuple[float, np.ndarray]:
    """idx, targets (B,T)  ->  (mean loss as a Python float, gradient (P,) in flat's dtype).

    With `dropout`, both are those of the network with that step's masks (a training step)."""
    loss, cache = forward(cfg, flat, idx, targets, dropout)
    return loss, backward(cfg, flat, cache)
