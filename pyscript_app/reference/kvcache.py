"""Incremental decoding with a key/value cache (the sampler's reference; spec of the GPU decode path).

Generating token t+1 only needs the new token's query against the keys and values of positions
0..t. Those do not change as the sequence grows (attention is causal), so each layer keeps them:
    k, v   (L, B, H, Tmax, D)     Tmax = cfg.block_size
decode_step feeds ONE token per sequence at position `pos`, writes its k and v into slot pos, and
attends over slots 0..pos. Its logits equal the last row of model.logits for the whole prefix.

Positions past block_size are the sampler's business (slide the window and rebuild the cache).
"""

from __future__ import annotations

import math

import numpy as np

from ..config import ModelConfig
from . import ops
from .model import unflatten


class KVCache:
    """Keys and values of every layer for positions 0..length-1 of B sequences."""

    def __init__(self, cfg: ModelConfig, batch: int = 1, dtype=np.float32) -> None:
        L, H, D, Tmax = cfg.n_layer, cfg.n_head, cfg.head_dim, cfg.block_size
        self.k = np.zeros((L, batch, H, Tmax, D), dtype=dtype)  # (L,B,H,Tmax,D)
        self.v = np.zeros((L, batch, H, Tmax, D), dtype=dtype)  # (L,B,H,Tmax,D)
        self.length = 0  # positions 0..length-1 hold valid keys and values

    @property
    def batch(self) -> int:
        return self.k.shape[1]

    def reset(self) -> None:
        self.length = 0


def decode_step(
    cfg: ModelConfig, flat: np.ndarray, cache: KVCache, token_ids: np.ndarray, pos: int
) -> np.ndarray:
    """token_ids (B,) int at position pos  ->  logits (B,V) for the next token.

    Requires positions 0..pos-1 already in the cache (pos <= cache.length); writing at an earlier
    pos discards the positions after it (cache.length becomes pos + 1)."""
    token_ids = np.asarray(token_ids).reshape(-1)  # (B,)
    B, C, H, D = token_ids.shape[0], cfg.n_embd, cfg.n_head, cfg.head_dim
    if B != cache.batch:
        raise ValueError(f"{B} tokens for a cache of batch {cache.batch}")
    if not 0 <= pos < cfg.block_size:
        raise ValueError(f"position {pos} outside the context 0..{cfg.block_size - 1}")
    if pos > cache.length:
        raise ValueError(f"position {pos} skips ahead of the cache (length {cache.length})")
    p = unflatten(cfg, flat)
    scale = 1.0 / math.sqrt(D)

    x = p["wte"][token_ids] + p["wpe"][pos]  # (B,C)
    for l in range(cfg.n_layer):
        pre = f"h{l}."
        xn1, _ = ops.rmsnorm_forward(x, p[pre + "ln1"], cfg.rms_eps)  # (B,C)
        qkv = ops.matmul_forward(xn1, p[pre + "qkv"]).reshape(B, 3, H, D)  # [q | k | v] per head
        cache.k[l, :, :, pos] = qkv[:, 1]  # (B,H,D)
        cache.v[l, :, :, pos] = qkv[:, 2]
        keys = cache.k[l, :, :, : pos + 1]  # (B,H,pos+1,D)
        values = cache.v[l, :, :, : pos + 1]  # (B,H,pos+1,D)
        q = qkv[:, 0, :, None, :]  # (B,H,1,D)
        scores = np.matmul(q, keys.swapaxes(-1, -2)) * scale  # (B,H,1,pos+1); no mask needed
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        att = np.matmul(probs, values).reshape(B, C)  # (B,H,1,D) -> (B,C), head h at h*D
        x = x + ops.matmul_forward(att, p[pre + "proj"])  # (B,C)
        xn2, _ = ops.rmsnorm_forward(x, p[pre + "ln2"], cfg.rms_eps)
        hidden = ops.relu_forward(ops.matmul_forward(xn2, p[pre + "fc"]))  # (B,4C)
        x = x + ops.matmul_forward(hidden, p[pre + "fc_proj"])  # (B,C)
    cache.length = pos + 1
    xnf, _ = ops.rmsnorm_forward(x, p["lnf"], cfg.rms_eps)
    return ops.matmul_forward(xnf, p["lm_head"])  # (B,V)


def prefill(cfg: ModelConfig, flat: np.ndarray, cache: KVCache, idx: np.ndarray) -> np.ndarray:
    """Reset the cache and feed the prompt idx (B,T), T >= 1  ->  logits (B,V) after its last token."""
    idx = np.asarray(idx)
    if idx.ndim != 2 or idx.shape[1] < 1:
        raise ValueError(f"prompt must be (B,T) with T >= 1, got shape {idx.shape}")
    cache.reset()
    for t in range(idx.shape[1]):
        logits = decode_step(cfg, flat, cache, idx[:, t], t)
    return logits
