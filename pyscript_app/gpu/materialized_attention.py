"""Causal attention with the (T,T) scores materialised: the per-head products as batched products over
(b, h) with strided operands, the softmax between them on shaders/attention_softmax.wgsl (f32), the
scores in two scratch buffers. Two kinds of products:

    "coop"  the mixed-precision step's: shaders/matmul_coop.wgsl (STRIDED), the GPU's matrix units,
            f16 operands and f32 sums; numpy statement reference/mixed.py (attention_forward_mixed,
            attention_backward_mixed)
    "f32"   the fp32 step's: shaders/matmul_heads.wgsl, f32 on CUDA cores; numpy statement
            reference/ops_attention.py (the same math up to the sums' order)

Pure Python (runs natively and in Pyodide). Letters as in config.py; D = C // H, scale = 1 / sqrt(D),
g = the backward's gradient scale (coop_rules.gradient_scale; 1 for "f32", where f16() is the identity).
Per (b, h), q, k, v (T,D) are head h's columns of qkv (B,T,3C):

    forward   S = f16(q * scale) @ f16(k).T      scores      (only blocks reaching the diagonal)
              P, lse = softmax(S) (causal)        scores -> P  attention_softmax_forward
              y = f16(P) @ f16(v)                 att          (k-slices up to the block's last row)
    backward  S again, as in the forward          scores
              dP = f16(g * dy) @ f16(v).T / g     dscores     (blocks reaching the diagonal)
              P = exp(S - lse), dS = P * (dP - rowsum(P * dP))   attention_softmax_backward
              dq = f16(g * dS) @ f16(k) * scale / g          into dqkv's q columns
              dk = f16(g * dS).T @ f16(q) * scale / g        into its k columns
              dv = f16(P).T @ f16(g * dy) / g                into its v columns

The backward recomputes S rather than keeping each layer's P (B*H*T*T floats per layer), as the blocks
kernels recompute theirs: one more small product per layer against L times the scratch.

Same interface as AttentionOps.forward / backward (gpu/attention_ops.py), which it stands in for in
ModelOps when use_materialized_attention (ENABLED below). Dispatches: 3 forward, 6 backward.
"""

from __future__ import annotations

import math

from .coop_rules import COOP_BIG, COOP_SMALL, coop_block, coop_values, coop_workgroup_bytes
from .executor import Executor, Target
from .layout import F32
from .registry import COOP_CAUSAL, COOP_EPILOGUES, is_gpu_adapter


# Whether ModelOps uses it where it can, per kind of product (use_materialized_attention), for contexts
# of at least MIN_CONTEXT; elsewhere the blocks kernels (AttentionOps) run the attention. Measured
# against them in interleaved rounds (H100, Dawn, 2026-12-07, probes/materialized_attention_probe.py,
# materialized-attention-probe-h100-dawn-2026-12-07*.json): `large` (T = 256, D = 64) mixed 10.74-10.91
# ms against 11.26-11.33, fp32 15.54-15.67 against 16.07-16.22; `medium` (T = 128, D = 32) mixed
# 2.63-2.70 against 2.57-2.58, fp32 3.17-3.19 against 3.09-3.14: the seven more dispatches per layer
# cost more than a short context's attention saves. Probes set an entry False to time the step without it.
ENABLED = {"coop": True, "f32": True}
MIN_CONTEXT = 256
PRODUCTS = tuple(ENABLED)


def materialized_attention_ok(ex: Executor, B: int, T: int, C: int, H: int, products: str = "coop") -> bool:
    """Whether a device can run this attention: score rows of whole vec4 (T a multiple of 4, as are C and
    D), the (B*H, T, T) scores within one binding, and for "coop" a device that runs matmul_coop."""
    return ((products == "f32" or getattr(ex, "coop_ok", False)) and H > 0 and C % H == 0 and (C // H) % 4 == 0
            and T % 4 == 0 and B * H * T * T * F32 <= ex.max_binding_bytes)


def use_materialized_attention(ex: Executor, B: int, T: int, C: int, H: int, products: str) -> bool:
    """Whether ModelOps runs its attention here: ENABLED[products], T >= MIN_CONTEXT,
    materialized_attention_ok, and for "f32" a GPU adapter (on lavapipe's 2 cores `small`'s fp32 step
    took 610 ms with it against 560 without: CPU adapters keep the rows kernels)."""
    return (ENABLED[products] and T >= MIN_CONTEXT and materialized_attention_ok(ex, B, T, C, H, products)
            and (products == "coop" or is_gpu_adapter(ex.adapter_info)))


class MaterializedAttentionOps:
    """Causal multi-head attention of width C with H heads for batches (B, T), its products of kind
    `products` ("coop" or "f32"; the module docstring)."""

    def __init__(self, ex: Executor, B: int, T: int, C: int, H: int, grad_scale: float = 1.0,
                 products: str = "coop") -> None:
        if products not in PRODUCTS:
            raise ValueError(f"unknown products {products!r} ({', '.join(PRODUCTS)})")
        if not materialized_attention_ok(ex, B, T, C, H, products):
            raise ValueError(f"materialised attention needs T and the head width multiples of 4, the scores in "
                             f"one binding and, for the matrix units, a mixed-precision device "
                             f"(B={B}, T={T}, C={C}, H={H})")
        self.ex, self.B, self.T, self.C, self.H, self.products = ex, B, T, C, H, products
        self.D = C // H
        self.scale = 1.0 / math.sqrt(self.D)
        self.g = grad_scale
        n = B * H * T * T
        self.scores = ex.alloc(n * F32, label="attention.scores")    # S, then P
        self.dscores = ex.alloc(n * F32, label="attention.dscores")  # dP, then dS
        # matmul_coop's parts binding (no k-runs here)
        self.unused = ex.alloc(256, label="attention.unused_binding") if products == "coop" else None
        self.u_rows = {"rows": B * H * T, "T": T}
        # (row stride, first float, batch stride, head stride) of each operand's stored layout, in floats
        three = 3 * C
        self.q, self.k, self.v = ((three, part * C, T * three, self.D) for part in range(3))
        self.heads = (C, 0, T * C, self.D)      # y, dy (B,T,C): head h at columns h*D
        self.square = (T, 0, H * T * T, T * T)  # scores (B*H, T, T)

    def forward(self, qkv: Target, y: Target, lse: Target) -> None:
        """Record y (B,T,C) and lse (B,H,T) from qkv (B,T,3C)."""
        self._scores(qkv)
        self.ex.dispatch("attention_softmax_forward", [self.scores, lse], self.u_rows)
        T, D = self.T, self.D
        self._product(self.scores, qkv, y, T, T, D, self.square, self.v, self.heads, causal="a_lower")

    def backward(self, dy: Target, qkv: Target, y: Target, lse: Target, dqkv: Target) -> None:
        """Record dqkv (B,T,3C) (overwritten) from dy (B,T,C) and the forward's qkv and lse (y is not
        read: delta is rowsum(P * dP))."""
        T, D, g = self.T, self.D, self.g
        self._scores(qkv)
        self._product(dy, qkv, self.dscores, T, D, T, self.heads, self.v, self.square, b_t=True, a_scale=g,
                      causal="lower")
        self.ex.dispatch("attention_softmax_backward", [self.scores, self.dscores, lse], self.u_rows)
        unscale = self.scale / g
        self._product(self.dscores, qkv, dqkv, T, T, D, self.square, self.k, self.q, a_scale=g, out_scale=unscale,
                      causal="a_lower")
        self._product(self.dscores, qkv, dqkv, T, T, D, self.square, self.q, self.k, a_t=True, a_scale=g,
                      out_scale=unscale, causal="a_upper")
        self._product(self.scores, dy, dqkv, T, T, D, self.square, self.heads, self.v, a_t=True, b_scale=g,
                      causal="a_upper")

    def _scores(self, qkv: Target) -> None:
        """S = f16(q * scale) @ f16(k).T into self.scores, the blocks that reach the diagonal."""
        T, D = self.T, self.D
        self._product(qkv, qkv, self.scores, T, D, T, self.q, self.k, self.square, b_t=True, a_scale=self.scale,
                      out_scale=1.0, causal="lower")

    def _product(self, a: Target, b: Target, y: Target, N: int, K: int, M: int, a_at, b_at, y_at,
                 a_t: bool = False, b_t: bool = False, a_scale: float = 1.0, b_scale: float = 1.0,
                 out_scale: float | None = None, causal: str = "none") -> None:
        """One product over the B*H heads: y = f16(a_scale * A) @ f16(b_scale * B) * out_scale (f16() the
        identity for "f32"), each operand at its (row stride, first float, batch stride, head stride)."""
        batches = self.B * self.H
        lay = {}
        for name, (ld, base, bs, hs) in (("a", a_at), ("b", b_at), ("y", y_at)):
            lay.update({f"ld{name}": ld, f"{name}_base": base, f"{name}_bs": bs, f"{name}_hs": hs})
        values = coop_values(N, K, M, a_t, b_t, a_scale, b_scale, out_scale, heads=self.H, batches=batches, **lay)
        layout = {"A_T": int(a_t), "B_T": int(b_t), "CAUSAL": COOP_CAUSAL[causal]}
        if self.products == "f32":
            self.ex.dispatch("matmul_heads", [a, b, y], values, overrides=layout)
            return
        block = coop_block(N, K, M, batches=batches)
        # 64 x 64 at most: the per-head products are narrow (M = D) or short (K = D), and the timings
        # above ran on 64 x 64 and 32 x 32 blocks
        if block == COOP_BIG or coop_workgroup_bytes(block, a_t, b_t) > self.ex.max_workgroup_bytes:
            block = dict(COOP_SMALL)
        overrides = {**block, **layout, "EPI": COOP_EPILOGUES["store"], "KSPLIT": 1, "STRIDED": 1}
        self.ex.dispatch("matmul_coop", [a, b, a, y, self.unused], values, overrides=overrides)
