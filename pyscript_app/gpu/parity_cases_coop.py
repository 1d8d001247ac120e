"""The parity case of shaders/matmul_coop.wgsl (the products of the mixed-precision step): every layout
the step uses and every epilogue, on a shape with ragged edges, against numpy over the same
f16-rounded operands (reference/mixed.py). Part of gpu/parity_cases.py's table; it runs only on a
device opened for mixed precision (ParityCase.needs_coop). Numpy-only, never in the browser.
"""

from __future__ import annotations

import numpy as np

from ..reference.mixed import to_f16
from .coop_rules import COOP_SMALL, coop_workgroup_bytes
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
                       {"N": n, "K": k, "M": m, "a_scale": a_scale, "b_scale": b_scale,
                        "out_scale": 1.0 / (a_scale * b_scale), "part_stride": n * m},
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
