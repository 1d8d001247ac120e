"""The reference GPT-2: forward to logits and loss, backward to every parameter, KV-cached decoding.

The same structure as model.py (our GPT), with GPT-2's parts (ops_gpt2.py): no autograd library;
the forward keeps what each backward needs, then the backward functions run in reverse order, the
sequence of kernels a GPU step records. Embedding, attention and the fused softmax + cross-entropy
are our own ops (ops.py, ops_attention.py): GPT-2 computes them the same way (attention scale
1/sqrt(D), causal, [q | k | v] columns with head h at h*D:(h+1)*D).

Architecture (pre-LN; letters as in gpt2_config.py, N = B*T; p = the parameter dict, whose names
and shapes gpt2_config.py documents):
    x = wte[idx] + wpe[:T]                                              (B,T,C)
    for each layer i:
        x = x + linear(attn(linear(layernorm(x), c_attn)), attn.c_proj)   causal, H heads
        x = x + linear(gelu(linear(layernorm(x), c_fc)), mlp.c_proj)
    logits = layernorm(x, ln_f) @ wte[:V].T                             (B,T,V) tied head
    loss = mean cross-entropy of logits against targets                 (nats per token)

No dropout: GPT-2's dropouts are off for inference and for the oracle tests.

Weights are a dict name -> array. Every activation is computed in the dtype of the weights
(float32 to run, as transformers does; float64 for gradient checks, see astype). Padded rows of
wte (V..Vp-1) are never looked up and never scored: logits are (.., V), not (.., Vp).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import ops
from . import ops_gpt2 as g2
from .gpt2_config import GPT2Config
from .kvcache import KVCache

Params = dict[str, np.ndarray]


# --- parameters ---------------------------------------------------------------------------------


def check_params(cfg: GPT2Config, params: Params) -> None:
    """Raise ValueError unless params has exactly cfg's names with cfg's shapes."""
    shapes = dict(cfg.param_shapes())
    missing, extra = set(shapes) - set(params), set(params) - set(shapes)
    if missing or extra:
        raise ValueError(
            f"parameter names differ: missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]}"
        )
    for name, shape in shapes.items():
        if params[name].shape != shape:
            raise ValueError(f"{name} has shape {params[name].shape}, expected {shape}")


def astype(params: Params, dtype) -> Params:
    """A copy of every tensor in `dtype` (float64 for gradient checks and tight oracles)."""
    return {name: np.asarray(t, dtype=dtype).copy() for name, t in params.items()}


def init_params(cfg: GPT2Config, seed: int, dtype=np.float32) -> Params:
    """GPT-2's initialisation: weights and embeddings N(0, 0.02), the two residual output
    projections (attn.c_proj, mlp.c_proj) N(0, 0.02 / sqrt(2L)) so the residual stream's variance
    does not grow with depth, biases 0, LayerNorm gain 1 and shift 0, padding rows of wte 0."""
    rng = np.random.default_rng(seed)
    out: Params = {}
    for name, shape in cfg.param_shapes():
        if ".ln_" in name or name.startswith("ln_f."):
            value = np.full(shape, 1.0 if name.endswith("weight") else 0.0)
        elif name.endswith("bias"):
            value = np.zeros(shape)
        else:
            std = 0.02 / math.sqrt(2 * cfg.n_layer) if name.endswith("c_proj.weight") else 0.02
            value = rng.standard_normal(shape) * std
        out[name] = value.astype(dtype)
    out["wte.weight"][cfg.vocab_size :] = 0  # (Vp-V, C) padding
    return out


def _check_ids(cfg: GPT2Config, idx: np.ndarray, what: str) -> None:
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{what} must be integer token ids, got {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= cfg.vocab_size):
        raise ValueError(f"{what} must be in 0..{cfg.vocab_size - 1} (padding rows are not tokens)")


# --- forward with an activation cache -----------------------------------------------------------


def _ln(p: Params, name: str, x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LayerNorm `name` (its .weight and .bias) of x (N,C)  ->  y (N,C), mean (N,), rstd (N,)."""
    return g2.layernorm_forward(x, p[name + ".weight"], p[name + ".bias"], eps)


def _linear(p: Params, name: str, x: np.ndarray) -> np.ndarray:
    """Linear layer `name` (its .weight (K,M) and .bias (M,)) of x (N,K)  ->  (N,M)."""
    return g2.linear_forward(x, p[name + ".weight"], p[name + ".bias"])


@dataclass
class LayerCache:
    """What one block's backward needs (N = B*T rows)."""

    x_in: np.ndarray  # (N,C) block input (residual stream)
    mean1: np.ndarray  # (N,)
    rstd1: np.ndarray  # (N,)
    xn1: np.ndarray  # (N,C) ln_1(x_in)
    qkv: np.ndarray  # (B,T,3C) xn1 @ c_attn + bias
    att: np.ndarray  # (B,T,C) attention output, before c_proj
    lse: np.ndarray  # (B,H,T)
    x_mid: np.ndarray  # (N,C) residual stream after the attention branch
    mean2: np.ndarray  # (N,)
    rstd2: np.ndarray  # (N,)
    xn2: np.ndarray  # (N,C) ln_2(x_mid)
    fc_pre: np.ndarray  # (N,4C) before GELU
    fc_act: np.ndarray  # (N,4C) after GELU


@dataclass
class ForwardCache:
    """Activations of one forward pass, kept for backward."""

    idx: np.ndarray  # (B,T) int
    layers: list[LayerCache] = field(default_factory=list)
    x_final: np.ndarray | None = None  # (N,C) residual stream entering ln_f
    meanf: np.ndarray | None = None  # (N,)
    rstdf: np.ndarray | None = None  # (N,)
    xnf: np.ndarray | None = None  # (N,C) ln_f(x_final)
    logits: np.ndarray | None = None  # (B,T,V) real vocabulary only
    losses: np.ndarray | None = None  # (N,) per-token loss, when targets were given
    dlogits: np.ndarray | None = None  # (N,V) d(mean loss)/dlogits, when targets were given


def _blocks(
    cfg: GPT2Config, p: Params, x: np.ndarray, B: int, T: int,
    cache: ForwardCache | None = None, kv: KVCache | None = None,
) -> np.ndarray:
    """x (N,C) embeddings of B sequences of T tokens at positions 0..T-1  ->  (N,C) after the L
    blocks. Appends each block's activations to `cache` and writes keys and values of positions
    0..T-1 into `kv` (the batched prefill), when given."""
    N, C, H, D, eps = B * T, cfg.n_embd, cfg.n_head, cfg.head_dim, cfg.layer_norm_epsilon
    for i in range(cfg.n_layer):
        h = f"h.{i}."
        xn1, mean1, rstd1 = _ln(p, h + "ln_1", x, eps)  # (N,C), (N,), (N,)
        qkv = _linear(p, h + "attn.c_attn", xn1).reshape(B, T, 3 * C)  # (B,T,3C)
        if kv is not None:
            heads = qkv.reshape(B, T, 3, H, D)  # [q | k | v], head h at h*D
            kv.k[i, :, :, :T] = heads[:, :, 1].transpose(0, 2, 1, 3)  # (B,H,T,D)
            kv.v[i, :, :, :T] = heads[:, :, 2].transpose(0, 2, 1, 3)  # (B,H,T,D)
        att, lse = ops.attention_forward(qkv, H)  # (B,T,C), (B,H,T)
        x_mid = x + _linear(p, h + "attn.c_proj", att.reshape(N, C))  # (N,C)
        xn2, mean2, rstd2 = _ln(p, h + "ln_2", x_mid, eps)  # (N,C), (N,), (N,)
        fc_pre = _linear(p, h + "mlp.c_fc", xn2)  # (N,4C)
        fc_act = g2.gelu_forward(fc_pre)  # (N,4C)
        x_out = x_mid + _linear(p, h + "mlp.c_proj", fc_act)  # (N,C)
        if cache is not None:
            cache.layers.append(LayerCache(
                x, mean1, rstd1, xn1, qkv, att, lse, x_mid, mean2, rstd2, xn2, fc_pre, fc_act
            ))
        x = x_out
    return x


def _forward_cached(
    cfg: GPT2Config, p: Params, idx: np.ndarray, targets: np.ndarray | None
) -> ForwardCache:
    idx = np.asarray(idx)
    if idx.ndim != 2:
        raise ValueError(f"idx must be (B,T), got shape {idx.shape}")
    B, T = idx.shape
    if T > cfg.n_positions:
        raise ValueError(f"sequence length {T} exceeds n_positions {cfg.n_positions}")
    _check_ids(cfg, idx, "idx")
    check_params(cfg, p)
    N, C = B * T, cfg.n_embd
    cache = ForwardCache(idx=idx)

    x = ops.embedding_forward(idx, p["wte.weight"], p["wpe.weight"]).reshape(N, C)  # (N,C)
    x = _blocks(cfg, p, x, B, T, cache=cache)  # (N,C)
    cache.x_final = x
    cache.xnf, cache.meanf, cache.rstdf = _ln(p, "ln_f", x, cfg.layer_norm_epsilon)  # (N,C), (N,), (N,)
    logits = g2.tied_head_forward(cache.xnf, p["wte.weight"], cfg.vocab_size)  # (N,V)
    cache.logits = logits.reshape(B, T, cfg.vocab_size)
    if targets is not None:
        targets = np.asarray(targets)
        if targets.shape != idx.shape:
            raise ValueError(f"targets shape {targets.shape} differs from idx shape {idx.shape}")
        _check_ids(cfg, targets, "targets")
        cache.losses, cache.dlogits = ops.crossentropy_forward_backward(logits, targets.reshape(N))
    return cache


def forward(
    cfg: GPT2Config, params: Params, idx: np.ndarray, targets: np.ndarray | None = None
) -> tuple[float | None, np.ndarray | ForwardCache]:
    """idx (B,T) int, targets (B,T) int or None (model.forward's contract).

    Without targets: (None, logits (B,T,V)). With targets: (mean loss as a Python float,
    ForwardCache) — the cache holds logits, per-token losses and everything backward needs."""
    cache = _forward_cached(cfg, params, idx, targets)
    if targets is None:
        return None, cache.logits
    return float(cache.losses.mean()), cache


def logits(cfg: GPT2Config, params: Params, idx: np.ndarray) -> np.ndarray:
    """idx (B,T)  ->  logits (B,T,V), V the real vocabulary."""
    return _forward_cached(cfg, params, idx, None).logits


# --- backward -----------------------------------------------------------------------------------


def backward(cfg: GPT2Config, params: Params, cache: ForwardCache) -> Params:
    """Gradient of the mean loss: a dict with params' names and shapes (wte's padding rows 0)."""
    if cache.dlogits is None:
        raise ValueError("backward needs a forward pass that was given targets")
    p = params
    B, T = cache.idx.shape
    N, C, H = B * T, cfg.n_embd, cfg.n_head
    grads: Params = {}

    # tied head and ln_f: logits = ln_f(x_final) @ wte[:V].T
    dxnf, dwte_head = g2.tied_head_backward(cache.dlogits, cache.xnf, p["wte.weight"])  # (N,C), (Vp,C)
    dx, grads["ln_f.weight"], grads["ln_f.bias"] = g2.layernorm_backward(
        dxnf, cache.x_final, p["ln_f.weight"], cache.meanf, cache.rstdf
    )  # dx (N,C) = d(x_final)

    for i in reversed(range(cfg.n_layer)):
        h, lc = f"h.{i}.", cache.layers[i]
        # MLP branch: x_out = x_mid + gelu(xn2 @ c_fc + b) @ c_proj + b; dx is d(x_out), (N,C)
        dfc_act, grads[h + "mlp.c_proj.weight"], grads[h + "mlp.c_proj.bias"] = g2.linear_backward(
            dx, lc.fc_act, p[h + "mlp.c_proj.weight"]
        )  # (N,4C)
        dfc_pre = g2.gelu_backward(dfc_act, lc.fc_pre)  # (N,4C)
        dxn2, grads[h + "mlp.c_fc.weight"], grads[h + "mlp.c_fc.bias"] = g2.linear_backward(
            dfc_pre, lc.xn2, p[h + "mlp.c_fc.weight"]
        )  # (N,C)
        dx_branch, grads[h + "ln_2.weight"], grads[h + "ln_2.bias"] = g2.layernorm_backward(
            dxn2, lc.x_mid, p[h + "ln_2.weight"], lc.mean2, lc.rstd2
        )
        dx = dx + dx_branch  # (N,C) d(x_mid): the residual path plus the branch
        # attention branch: x_mid = x_in + attn(xn1 @ c_attn + b) @ c_proj + b
        datt, grads[h + "attn.c_proj.weight"], grads[h + "attn.c_proj.bias"] = g2.linear_backward(
            dx, lc.att.reshape(N, C), p[h + "attn.c_proj.weight"]
        )  # (N,C)
        dqkv = ops.attention_backward(datt.reshape(B, T, C), lc.qkv, lc.att, lc.lse, H)  # (B,T,3C)
        dxn1, grads[h + "attn.c_attn.weight"], grads[h + "attn.c_attn.bias"] = g2.linear_backward(
            dqkv.reshape(N, 3 * C), lc.xn1, p[h + "attn.c_attn.weight"]
        )  # (N,C)
        dx_branch, grads[h + "ln_1.weight"], grads[h + "ln_1.bias"] = g2.layernorm_backward(
            dxn1, lc.x_in, p[h + "ln_1.weight"], lc.mean1, lc.rstd1
        )
        dx = dx + dx_branch  # (N,C) d(x_in)

    # embedding: wte gets the lookup's scatter-add plus the tied head's share
    dwte_emb, grads["wpe.weight"] = ops.embedding_backward(
        cache.idx, dx.reshape(B, T, C), cfg.padded_vocab, cfg.n_positions
    )  # (Vp,C), (P,C)
    grads["wte.weight"] = dwte_emb + dwte_head  # (Vp,C)
    return {name: grads[name] for name, _ in cfg.param_shapes()}  # layout order


def loss_and_grad(
    cfg: GPT2Config, params: Params, idx: np.ndarray, targets: np.ndarray
) -> tuple[float, Params]:
    """idx, targets (B,T)  ->  (mean loss as a Python float, gradient dict in params' dtype)."""
    loss, cache = forward(cfg, params, idx, targets)
    return loss, backward(cfg, params, cache)


# --- KV-cached decoding -------------------------------------------------------------------------
# The cache is kvcache.KVCache(cfg, batch, dtype): k, v (L,B,H,P,D). A GPT2Config has the fields
# it reads (n_layer, n_head, head_dim, block_size = n_positions).


def prefill(cfg: GPT2Config, params: Params, cache: KVCache, idx: np.ndarray) -> np.ndarray:
    """Reset the cache and run the prompt idx (B,T), T >= 1, in ONE batched pass (causal attention
    over the whole prompt, as the GPU's prefill does), keeping every layer's keys and values of
    positions 0..T-1  ->  logits (B,V) for the token after the prompt."""
    idx = np.asarray(idx)
    if idx.ndim != 2 or idx.shape[1] < 1:
        raise ValueError(f"prompt must be (B,T) with T >= 1, got shape {idx.shape}")
    B, T = idx.shape
    if B != cache.batch:
        raise ValueError(f"{B} prompts for a cache of batch {cache.batch}")
    if T > cfg.n_positions:
        raise ValueError(f"prompt length {T} exceeds n_positions {cfg.n_positions}")
    _check_ids(cfg, idx, "prompt")
    check_params(cfg, params)
    p, C = params, cfg.n_embd
    cache.reset()
    x = ops.embedding_forward(idx, p["wte.weight"], p["wpe.weight"]).reshape(B * T, C)  # (N,C)
    x = _blocks(cfg, p, x, B, T, kv=cache)  # (N,C)
    cache.length = T
    last = x.reshape(B, T, C)[:, -1]  # (B,C): only the last position's logits are needed
    xnf, _, _ = _ln(p, "ln_f", last, cfg.layer_norm_epsilon)  # (B,C)
    return g2.tied_head_forward(xnf, p["wte.weight"], cfg.vocab_size)  # (B,V)


def decode_step(
    cfg: GPT2Config, params: Params, cache: KVCache, token_ids: np.ndarray, pos: int
) -> np.ndarray:
    """token_ids (B,) int at position pos  ->  logits (B,V) for the next token.

    Requires positions 0..pos-1 in the cache (pos <= cache.length); writing at an earlier pos
    discards the positions after it (cache.length becomes pos + 1). The new token's query attends
    over slots 0..pos, which are all in its past: no causal mask is needed."""
    token_ids = np.asarray(token_ids).reshape(-1)  # (B,)
    B, C, H, D, eps = token_ids.shape[0], cfg.n_embd, cfg.n_head, cfg.head_dim, cfg.layer_norm_epsilon
    if B != cache.batch:
        raise ValueError(f"{B} tokens for a cache of batch {cache.batch}")
    if not 0 <= pos < cfg.n_positions:
        raise ValueError(f"position {pos} outside the context 0..{cfg.n_positions - 1}")
    if pos > cache.length:
        raise ValueError(f"position {pos} skips ahead of the cache (length {cache.length})")
    _check_ids(cfg, token_ids, "token_ids")
    p = params
    scale = 1.0 / math.sqrt(D)

    x = p["wte.weight"][token_ids] + p["wpe.weight"][pos]  # (B,C)
    for i in range(cfg.n_layer):
        h = f"h.{i}."
        xn1, _, _ = _ln(p, h + "ln_1", x, eps)  # (B,C)
        qkv = _linear(p, h + "attn.c_attn", xn1).reshape(B, 3, H, D)  # (B,3C) as [q | k | v] per head
        cache.k[i, :, :, pos] = qkv[:, 1]  # (B,H,D)
        cache.v[i, :, :, pos] = qkv[:, 2]
        keys = cache.k[i, :, :, : pos + 1]  # (B,H,pos+1,D)
        values = cache.v[i, :, :, : pos + 1]  # (B,H,pos+1,D)
        q = qkv[:, 0, :, None, :]  # (B,H,1,D)
        scores = np.matmul(q, keys.swapaxes(-1, -2)) * scale  # (B,H,1,pos+1)
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)  # (B,H,1,pos+1)
        att = np.matmul(probs, values).reshape(B, C)  # (B,H,1,D) -> (B,C), head h at h*D
        x = x + _linear(p, h + "attn.c_proj", att)  # (B,C)
        xn2, _, _ = _ln(p, h + "ln_2", x, eps)  # (B,C)
        hidden = g2.gelu_forward(_linear(p, h + "mlp.c_fc", xn2))  # (B,4C)
        x = x + _linear(p, h + "mlp.c_proj", hidden)  # (B,C)
    cache.length = pos + 1
    xnf, _, _ = _ln(p, "ln_f", x, eps)  # (B,C)
    return g2.tied_head_forward(xnf, p["wte.weight"], cfg.vocab_size)  # (B,V)


def generate_greedy(
    cfg: GPT2Config, params: Params, prompt: np.ndarray, max_new_tokens: int
) -> np.ndarray:
    """prompt (B,T0) int  ->  (B, max_new_tokens) ids, each the argmax of the logits (ties: the
    lowest id, as torch.argmax). One batched prefill, then one decode_step per token."""
    prompt = np.asarray(prompt)
    B, T0 = prompt.shape
    if T0 + max_new_tokens - 1 > cfg.n_positions:
        raise ValueError(
            f"{T0} prompt + {max_new_tokens} new tokens exceed n_positions {cfg.n_positions}"
        )
    cache = KVCache(cfg, batch=B, dtype=params["wte.weight"].dtype)
    step_logits = prefill(cfg, params, cache, prompt)  # (B,V)
    out = np.empty((B, max_new_tokens), dtype=np.int64)
    for n in range(max_new_tokens):
        out[:, n] = step_logits.argmax(axis=-1)  # (B,)
        if n + 1 < max_new_tokens:  # the last new token is never fed back
            step_logits = decode_step(cfg, params, cache, out[:, n], T0 + n)
    return out
