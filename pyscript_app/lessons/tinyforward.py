"""The whole GPT forward pass in plain Python lists: a lesson artefact, written to be read.

The attention and sampling lessons run it in the page on a small checkpoint (nano: C = 16 wide,
H = 4 heads, T = 16 positions), so a reader can see every number the model computes, the
attention probabilities above all. It is the same math as reference/model.py (the numpy
specification) and is tested against it; it is far too slow for anything but tiny models.

    model = TinyGPT(model_cfg, params)            # params: the flat float32 vector (array('f') or list)
    out = model.forward([bos, 301, 280])          # Forward: logits of the last position, attention
    out.attention[layer][head][t][s]              # how much query t looks at key s (0 for s > t)

Shapes use the letters of config.py: T positions, C width, H heads, D = C // H, V vocabulary.
A "vector" is a list of C floats; a "matrix" (rows, cols) is a list of rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..config import ModelConfig

Vector = list[float]
Matrix = list[list[float]]


def rows_of(flat: Sequence[float], offset: int, shape: tuple[int, ...]) -> Matrix | Vector:
    """A tensor of the flat parameter vector: a list for (C,), a list of rows for (rows, cols)."""
    if len(shape) == 1:
        return [float(v) for v in flat[offset:offset + shape[0]]]
    rows, cols = shape
    return [[float(v) for v in flat[offset + r * cols: offset + (r + 1) * cols]] for r in range(rows)]


def vecmat(x: Vector, w: Matrix) -> Vector:
    """x (K,) @ w (K, M) -> (M,): a linear layer without bias (weights are stored (in, out))."""
    out = [0.0] * len(w[0])
    for xk, row in zip(x, w):
        if xk:  # ReLU outputs are often exactly 0
            for m, wkm in enumerate(row):
                out[m] += xk * wkm
    return out


def rmsnorm(x: Vector, gain: Vector, eps: float) -> Vector:
    """x / sqrt(mean(x^2) + eps) * gain: rescale the vector to unit root-mean-square, then per-channel gain."""
    rstd = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + eps)
    return [v * rstd * g for v, g in zip(x, gain)]


def softmax(scores: Vector) -> Vector:
    """exp(s - max) / sum: probabilities summing to 1 (subtracting the max avoids overflow)."""
    m = max(scores)
    exps = [math.exp(s - m) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def add(a: Vector, b: Vector) -> Vector:
    return [x + y for x, y in zip(a, b)]


@dataclass
class Forward:
    """What one forward pass over T tokens computed."""

    logits: list[Vector]  # (T', V): every position's next-token logits, or only the last one's
    attention: list[list[Matrix]]  # (L, H, T, T) probabilities; row t sums to 1 over keys 0..t


class TinyGPT:
    """The model of config.py (pre-norm, RMSNorm, causal attention, ReLU MLP, no biases)."""

    def __init__(self, cfg: ModelConfig, params: Sequence[float]) -> None:
        if len(params) != cfg.param_count:
            raise ValueError(f"{len(params)} parameters, the model has {cfg.param_count}")
        self.cfg = cfg
        self.p = {name: rows_of(params, off, shape) for name, (off, shape) in cfg.param_offsets().items()}

    def attention(self, layer: int, xn: list[Vector]) -> tuple[list[Vector], list[Matrix]]:
        """Causal self-attention of one layer over the normalised rows xn (T, C).

        Returns the output rows (T, C) before the output projection, and the probabilities (H, T, T)."""
        C, H, D = self.cfg.n_embd, self.cfg.n_head, self.cfg.head_dim
        qkv = [vecmat(x, self.p[f"h{layer}.qkv"]) for x in xn]  # (T, 3C): columns [q | k | v]
        scale = 1.0 / math.sqrt(D)
        out = [[0.0] * C for _ in xn]  # (T, C): head h writes columns h*D:(h+1)*D
        probs_per_head = []
        for h in range(H):
            q = [row[h * D:(h + 1) * D] for row in qkv]  # (T, D)
            k = [row[C + h * D:C + (h + 1) * D] for row in qkv]  # (T, D)
            v = [row[2 * C + h * D:2 * C + (h + 1) * D] for row in qkv]  # (T, D)
            probs = []
            for t in range(len(xn)):
                # query t scores keys 0..t (the causal mask: no looking at later tokens)
                scores = [scale * sum(a * b for a, b in zip(q[t], k[s])) for s in range(t + 1)]
                p = softmax(scores)
                for s, ps in enumerate(p):  # the output is the probability-weighted sum of values
                    for d in range(D):
                        out[t][h * D + d] += ps * v[s][d]
                probs.append(p + [0.0] * (len(xn) - t - 1))
            probs_per_head.append(probs)
        return out, probs_per_head

    def forward(self, ids: Sequence[int], all_logits: bool = False) -> Forward:
        """ids: T token ids (T <= block_size). all_logits=False computes the LM head for the last
        position only (what sampling needs; the head is the biggest matmul of a tiny model)."""
        cfg, p = self.cfg, self.p
        T = len(ids)
        if not 0 < T <= cfg.block_size:
            raise ValueError(f"need 1 to {cfg.block_size} tokens, got {T}")
        if any(not 0 <= i < cfg.vocab_size for i in ids):
            raise ValueError(f"token ids must be in [0, {cfg.vocab_size})")
        # token embedding + position embedding: the residual stream, one vector per position (T, C)
        x = [add(p["wte"][i], p["wpe"][t]) for t, i in enumerate(ids)]
        attention = []
        for l in range(cfg.n_layer):
            # attention branch, added to the residual stream
            xn = [rmsnorm(row, p[f"h{l}.ln1"], cfg.rms_eps) for row in x]
            att, probs = self.attention(l, xn)
            x = [add(row, vecmat(a, p[f"h{l}.proj"])) for row, a in zip(x, att)]
            attention.append(probs)
            # MLP branch: up to 4C, ReLU, back down to C, added to the residual stream
            for t, row in enumerate(x):
                hidden = [max(0.0, v) for v in vecmat(rmsnorm(row, p[f"h{l}.ln2"], cfg.rms_eps), p[f"h{l}.fc"])]
                x[t] = add(row, vecmat(hidden, p[f"h{l}.fc_proj"]))
        heads = x if all_logits else x[-1:]
        logits = [vecmat(rmsnorm(row, p["lnf"], cfg.rms_eps), p["lm_head"]) for row in heads]  # (T', V)
        return Forward(logits, attention)
