"""shaders/matmul_heads.wgsl against numpy: products batched over (b, h) with strided operands in every
layout, and the CAUSAL modes (skipped blocks keep what the output held; cut k-slices lose nothing where
the operand is triangular).

Tolerances: f32 sums in another order, atol 1e-5 + rtol 1e-4."""

import numpy as np
import pytest

from _gpu import assert_close, download, gpu, upload  # noqa: F401
from pyscript_app.gpu.coop_rules import coop_values
from pyscript_app.gpu.registry import COOP_CAUSAL

pytestmark = pytest.mark.gpu


def _run(gpu, a, b, y0, values, a_t=0, b_t=0, causal="none"):
    y = upload(gpu, y0)
    gpu.dispatch("matmul_heads", [upload(gpu, a), upload(gpu, b), y], values,
                 overrides={"A_T": a_t, "B_T": b_t, "CAUSAL": COOP_CAUSAL[causal]})
    return download(gpu, y, y0.shape)


@pytest.mark.parametrize("a_t,b_t", [(0, 0), (0, 1), (1, 0)])
def test_batched_strided_products_in_every_layout(gpu, a_t, b_t):
    """(B, H) = (2, 3) heads; each operand a column band of a wider row-major buffer, as q, k, v are of
    qkv; N, K, M past one 64-block, ragged."""
    r = np.random.default_rng(10 * a_t + b_t)
    B, H, N, K, M = 2, 3, 68, 20, 72  # contiguous dimensions (N where A_T) multiples of 4
    pad = 8  # floats of other columns between heads
    a_rows, a_cols = (K, N) if a_t else (N, K)
    b_rows, b_cols = (M, K) if b_t else (K, M)
    a = r.standard_normal((B, a_rows, H * (a_cols + pad))).astype(np.float32)
    b = r.standard_normal((B, b_rows, H * (b_cols + pad))).astype(np.float32)
    lay = {"heads": H, "batches": B * H,
           "lda": H * (a_cols + pad), "a_base": 4, "a_bs": a_rows * H * (a_cols + pad), "a_hs": a_cols + pad,
           "ldb": H * (b_cols + pad), "b_base": 0, "b_bs": b_rows * H * (b_cols + pad), "b_hs": b_cols + pad,
           "ldy": M, "y_base": 0, "y_bs": H * N * M, "y_hs": N * M}
    # a_base = 4: each head's band starts 4 floats into its slot (the last band ends inside the row)
    got = _run(gpu, a, b, np.full((B, H, N, M), np.nan, np.float32),
               coop_values(N, K, M, a_t, b_t, 0.5, 2.0, 3.0, **lay), a_t, b_t)
    for bb in range(B):
        for h in range(H):
            A = a[bb, :, 4 + h * (a_cols + pad):4 + h * (a_cols + pad) + a_cols]
            Bm = b[bb, :, h * (b_cols + pad):h * (b_cols + pad) + b_cols]
            ref = 3.0 * ((0.5 * (A.T if a_t else A)) @ (2.0 * (Bm.T if b_t else Bm)))
            assert_close(got[bb, h], ref, 1e-5, 1e-4, f"batch {bb} head {h}")


def test_causal_modes(gpu):
    r = np.random.default_rng(7)
    T, D = 132, 16  # three 64-row blocks, the last ragged
    q, k = r.standard_normal((T, D)).astype(np.float32), r.standard_normal((T, D)).astype(np.float32)
    plain = {"heads": 1, "batches": 1}
    # 1: scores; blocks wholly above the diagonal keep what y held (NaN), the others are whole
    got = _run(gpu, q, k, np.full((T, T), np.nan, np.float32), coop_values(T, D, T, False, True, **plain),
               b_t=1, causal="lower")
    first = np.arange(T) // 64 * 64  # each row's (column's) block start
    blocks_reached = first[None, :] < first[:, None] + 64  # col0 < row0 + 64
    assert np.isnan(got[~blocks_reached]).all() and not np.isnan(got[blocks_reached]).any()
    assert_close(got[blocks_reached], (q @ k.T)[blocks_reached], 1e-5, 1e-4, "scores")
    # 2 and 3: a lower-triangular A, and the same stored transposed (its (N,K) view upper-triangular)
    p = np.tril(r.standard_normal((T, T))).astype(np.float32)
    v = r.standard_normal((T, D)).astype(np.float32)
    got = _run(gpu, p, v, np.zeros((T, D), np.float32), coop_values(T, T, D, **plain), causal="a_lower")
    assert_close(got, p @ v, 1e-5, 1e-4, "P @ v")
    got = _run(gpu, p, v, np.zeros((T, D), np.float32), coop_values(T, T, D, True, **plain), a_t=1, causal="a_upper")
    assert_close(got, p.T @ v, 1e-5, 1e-4, "P.T @ v")
