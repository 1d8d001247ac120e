"""The parity cases of the mixed-precision step's own kernels, against numpy over the same f16-rounded
operands (reference/mixed.py), and of the materialised attention's (gpu/materialized_attention.py).
Part of gpu/parity_cases.py's table. Numpy-only, never in the browser.

  _matmul_coop       shaders/matmul_coop.wgsl: every layout the step uses and every epilogue, on a
                     shape with ragged edges (a device opened for mixed precision: needs_coop)
  _attention_softmax shaders/attention_softmax.wgsl, forward and backward (any device)
  _attention_coop    gpu/materialized_attention.py's whole recording on the matrix units (the batched,
                     strided, causal products and the softmax) against attention_forward_mixed /
                     attention_backward_mixed (needs_coop)
  _attention_heads   the same with f32 products (shaders/matmul_heads.wgsl) against
                     reference/ops_attention.py (any device)
"""

from __future__ import annotations

import numpy as np

from ..reference.mixed import attention_backward_mixed, attention_forward_mixed, to_f16
from ..reference.ops_attention import attention_backward, attention_forward
from .materialized_attention import MaterializedAttentionOps
from .coop_rules import COOP_SMALL, coop_block, coop_values, coop_workgroup_bytes
from .parity_case_builder import CaseBuilder, ParityCase, _rng
from .registry import COOP_EPILOGUES


def _matmul_coop(N: int, K: int, M: int):
    """y = x @ w with each epilogue (store, relu, residual), dx = dy @ w.T relu-masked with dy scaled by
    2^10 (the backward's gradient scale), dw = x.T @ dy with the scale on dy as B, whole and in k-runs
    (KSPLIT) added by add_parts. atol 1e-5 + rtol 1e-4
    against float64 sums of the same f16 operands: only the order of the f32 sums differs."""
    def make(b: CaseBuilder) -> None:
        r = _rng(N, K, M, 7)
        x, w, dy, res = (r.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M), (N, M)))
        x[:, ::3] = np.maximum(x[:, ::3], 0.0)  # exact zeros: relu'(0) is taken as 0
        dy *= np.float32(2.0 ** -12)  # gradient-sized: below f16's normal range without the scale
        s = 2.0 ** 10
        for name, arr in (("x", x), ("w", w), ("dy", dy), ("res", res)):
            b.input(name, arr)
        for name, n in (("y", N * M), ("y_relu", N * M), ("y_res", N * M), ("dx", N * K), ("dw", K * M),
                        ("dw_split3", K * M), ("dw_split8", K * M), ("parts", 7 * K * M), ("unused", 4)):
            b.output(name, n)
        flops = 2 * N * K * M

        def coop(a, bb, e, out, n, k, m, epilogue, a_t=0, b_t=0, a_scale=1.0, b_scale=1.0, ksplit=1):
            b.dispatch("matmul_coop", [a, bb, e, out, "parts" if ksplit > 1 else "unused"],
                       coop_values(n, k, m, a_t, b_t, a_scale, b_scale, part_stride=n * m),
                       overrides={**COOP_SMALL, "A_T": a_t, "B_T": b_t, "EPI": COOP_EPILOGUES[epilogue],
                                  "KSPLIT": ksplit}, flops=flops)

        coop("x", "w", "x", "y", N, K, M, "store")
        coop("x", "w", "x", "y_relu", N, K, M, "relu")
        coop("x", "w", "res", "y_res", N, K, M, "residual")
        coop("dy", "w", "x", "dx", N, M, K, "relu_mask", b_t=1, a_scale=s)
        coop("x", "dy", "x", "dw", K, N, M, "store", a_t=1, b_scale=s)
        # dw in k-runs (7 slices of 32 over N = 200): 3 uneven runs, and 8 with the last one empty
        for ksplit in (3, 8):
            coop("x", "dy", "x", f"dw_split{ksplit}", K, N, M, "store", a_t=1, b_scale=s, ksplit=ksplit)
            b.dispatch("add_parts", ["parts", f"dw_split{ksplit}"], {"n": K * M, "count": ksplit - 1, "stride": K * M})
        x16, w16 = to_f16(x).astype(np.float64), to_f16(w).astype(np.float64)
        dy16 = to_f16(dy * np.float32(s)).astype(np.float64) / s
        y = x16 @ w16
        for out, ref in (("y", y), ("y_relu", np.maximum(y, 0)), ("y_res", res + y),
                         ("dx", (dy16 @ w16.T) * (x > 0)), ("dw", x16.T @ dy16), ("dw_split3", x16.T @ dy16),
                         ("dw_split8", x16.T @ dy16)):
            b.expect_close(out, ref, 1e-5 * np.abs(ref).max(), 1e-4, out)
    return ParityCase(f"matmul_coop_{N}x{K}x{M}", ("matmul_coop", "add_parts"), make,
                      max(coop_workgroup_bytes(COOP_SMALL, a_t, b_t) for a_t, b_t in ((0, 0), (0, 1), (1, 0))),
                      needs_coop=True)


def _causal_scores(BH: int, T: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(B*H, T, T) scores, NaN above the diagonal (what a skipped block leaves may be anything), and
    the causal mask."""
    keep = np.tril(np.ones((T, T), bool))
    s = (3 * _rng(BH, T, seed).standard_normal((BH, T, T))).astype(np.float32)
    return np.where(keep, s, np.float32(np.nan)), keep


def _attention_softmax(BH: int, T: int):
    """Both entries on scores whose entries above the diagonal are NaN: no output may see them.
    atol 1e-6 + rtol 1e-5 (exp and log to a few ulp, the sums in another order)."""
    def make(b: CaseBuilder) -> None:
        s, keep = _causal_scores(BH, T, 1)
        dp = np.where(keep, _rng(BH, T, 2).standard_normal(s.shape), np.nan).astype(np.float32)
        b.input("s", s), b.input("s2", s), b.input("dp", dp), b.output("lse", BH * T)
        u = {"rows": BH * T, "T": T}
        b.dispatch("attention_softmax_forward", ["s", "lse"], u)
        b.dispatch("attention_softmax_backward", ["s2", "dp", "lse"], u)
        s0 = np.where(keep, s, 0).astype(np.float64)
        m = np.where(keep, s0, -np.inf).max(-1, keepdims=True)
        e = np.where(keep, np.exp(s0 - m), 0)
        lse = m + np.log(e.sum(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
        dp0 = np.where(keep, dp, 0)
        b.expect_close("s", p, 1e-6, 1e-5, "P (forward)")
        b.expect_close("lse", lse, 1e-6, 1e-5, "lse")
        b.expect_close("s2", p, 1e-6, 1e-5, "P (backward, from lse)")
        b.expect_close("dp", p * (dp0 - (p * dp0).sum(-1, keepdims=True)), 1e-6, 1e-5, "dS")
    return ParityCase(f"attention_softmax_{BH}x{T}", ("attention_softmax_forward", "attention_softmax_backward"), make)


class _Recording:
    """An executor stand-in that records MaterializedAttentionOps' dispatches into a case: alloc names an
    output."""

    coop_ok = True

    def __init__(self, b: CaseBuilder) -> None:
        self.b, self.count = b, 0
        self.max_binding_bytes = self.max_workgroup_bytes = 1 << 30

    def alloc(self, nbytes: int, label: str = "") -> str:
        self.count += 1
        return self.b.output(f"{label or 'scratch'}{self.count}", nbytes // 4)

    def dispatch(self, kernel, buffers, params, *, overrides=None, shape=None) -> None:
        self.b.dispatch(kernel, buffers, params, overrides=overrides)


def _attention_coop(B: int, T: int, C: int, H: int):
    """The attention of the mixed step (gpu/materialized_attention.py) forward and backward, T past one
    block (ragged), with a gradient of gradient size (scaled by 2^10 in the products). Tolerances: lse atol
    1e-5 + rtol 1e-4 (f32 sums in another order); y and dqkv atol 1e-3 of their largest + rtol 1e-3:
    the scores' sums in another order move P by an ulp, which rounds some f16(P) to the other
    neighbour (in numpy, scores shaken by 2.4e-7 moved y to 1.8x an rtol-1e-4 allowance, and y and
    dqkv to under 0.03 of these), while a wrong stride, offset or causal range moves them by O(1)."""
    def make(b: CaseBuilder) -> None:
        r = _rng(B, T, C, H)
        qkv = r.standard_normal((B, T, 3 * C)).astype(np.float32)
        dy = (1e-3 * r.standard_normal((B, T, C))).astype(np.float32)
        g = 2.0 ** 10
        b.input("qkv", qkv), b.input("dy", dy)
        b.output("y", B * T * C), b.output("lse", B * H * T), b.output("dqkv", 3 * B * T * C)
        att = MaterializedAttentionOps(_Recording(b), B, T, C, H, g)
        att.forward("qkv", "y", "lse")
        att.backward("dy", "qkv", "y", "lse", "dqkv")
        ref_y, ref_lse = attention_forward_mixed(qkv, H)
        ref_d = attention_backward_mixed(dy, qkv, ref_y, ref_lse, H, g)
        b.expect_close("y", ref_y, 1e-3 * float(np.abs(ref_y).max()), 1e-3, "y")
        b.expect_close("lse", ref_lse, 1e-5, 1e-4, "lse")
        b.expect_close("dqkv", ref_d, 1e-3 * float(np.abs(ref_d).max()), 1e-3, "dqkv")
    return ParityCase(f"attention_coop_B{B}_T{T}_C{C}_H{H}", ("matmul_coop", "attention_softmax_forward",
                                                             "attention_softmax_backward"), make,
                      max(coop_workgroup_bytes(coop_block(n, k, m, batches=B * H), a_t, b_t)
                          for n, k, m in ((T, C // H, T), (T, T, C // H)) for a_t, b_t in ((0, 0), (0, 1), (1, 0))),
                      needs_coop=True)


def _attention_heads(B: int, T: int, C: int, H: int):
    """The materialised attention with f32 products (shaders/matmul_heads.wgsl, the fp32 step's) forward
    and backward, T past one 64-row block (ragged), against reference/ops_attention.py in float64:
    the tolerances of the attention kernels' own cases (gpu/parity_cases.py _attention)."""
    def make(b: CaseBuilder) -> None:
        r = _rng(B, T, C, H, 5)
        qkv = (1.5 * r.standard_normal((B, T, 3 * C))).astype(np.float32)  # softmax far from uniform
        dy = r.standard_normal((B, T, C)).astype(np.float32)
        b.input("qkv", qkv), b.input("dy", dy)
        b.output("y", B * T * C), b.output("lse", B * H * T), b.output("dqkv", 3 * B * T * C)
        att = MaterializedAttentionOps(_Recording(b), B, T, C, H, 1.0, "f32")
        att.forward("qkv", "y", "lse")
        att.backward("dy", "qkv", "y", "lse", "dqkv")
        q64, dy64 = qkv.astype(np.float64), dy.astype(np.float64)
        ref_y, ref_lse = attention_forward(q64, H)
        b.expect_close("y", ref_y, 1e-5, 1e-4, "y")
        b.expect_close("lse", ref_lse, 1e-5, 1e-5, "lse")
        b.expect_close("dqkv", attention_backward(dy64, q64, ref_y, ref_lse, H), 2e-5, 2e-4, "dqkv")
    return ParityCase(f"attention_heads_B{B}_T{T}_C{C}_H{H}", ("matmul_heads", "attention_softmax_forward",
                                                              "attention_softmax_backward"), make, 8192 + 256)
