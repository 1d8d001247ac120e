"""The bias of GPT-2's linear layers and its tied head on the GPU, against reference/ops_gpt2.py (float64):

- matmul.wgsl's bias entries: y = x @ w + b, gelu(x @ w + b), res + (x @ w + b), at awkward shapes,
  several tiles, 4 x 4 outputs per invocation and sliced K; their _v4 twins bit-identical to them;
- bias.wgsl's bias_backward: db = dy.sum(axis=0);
- the tied head, logits = x @ wte[:V].T and its wte gradient, through the existing
  matmul_backward_dx / matmul_backward_dw with wte's padding rows never read nor written.

Tolerances: products atol 1e-5 + rtol 1e-4 (tests/test_kernels_matmul.py's); db atol 1e-5 + rtol 1e-5."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.gpu.registry import MATMUL_VEC4_TWINS
from pyscript_app.reference.ops_gpt2 import (gelu_forward, linear_backward, linear_forward, tied_head_backward,
                                             tied_head_forward)

pytestmark = pytest.mark.gpu
ATOL, RTOL = 1e-5, 1e-4
BIAS_ENTRIES = ("matmul_forward_bias", "matmul_forward_bias_gelu", "matmul_forward_bias_residual")


def _case(N, K, M, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((N, K)).astype(np.float32), rng.standard_normal((K, M)).astype(np.float32)
    b, res = rng.standard_normal(M).astype(np.float32), rng.standard_normal((N, M)).astype(np.float32)
    return x, w, b, res


def _refs(x, w, b, res):
    lin = linear_forward(*(a.astype(np.float64) for a in (x, w, b)))
    return {"matmul_forward_bias": lin, "matmul_forward_bias_gelu": gelu_forward(lin),
            "matmul_forward_bias_residual": res.astype(np.float64) + lin}


def _run(gpu, kernel, x, w, b, res, tiles=None, prior=None):
    N, M = x.shape[0], w.shape[1]
    y = upload(gpu, prior) if prior is not None else empty(gpu, (N, M))
    inputs = [x, w, b, res] if kernel.startswith("matmul_forward_bias_residual") else [x, w, b]
    dims = {"N": N, "K": x.shape[1], "M": M, "accumulate": int(prior is not None)}
    gpu.dispatch(kernel, [upload(gpu, a) for a in inputs] + [y], dims, overrides=tiles)
    return download(gpu, y, (N, M))


TILES = [None, {"TM": 32, "TN": 32}, {"TM": 128, "TN": 128}, {"TM": 32, "TN": 32, "RPI": 4, "KGROUPS": 4},
         {"TM": 64, "TN": 64, "RPI": 4}]


def _tiles_id(t):
    return "default" if t is None else "x".join(str(v) for v in t.values())


@pytest.mark.parametrize("tiles", TILES, ids=_tiles_id)
@pytest.mark.parametrize("N,K,M", [(1, 1, 1), (7, 5, 3), (33, 17, 65), (65, 20, 132)])
def test_bias_entries_match_reference(gpu, N, K, M, tiles):
    x, w, b, res = _case(N, K, M, N * 100 + K + M)
    x *= 0.5  # pre-activations of a few units: the GELU's curved part
    refs = _refs(x, w, b, res)
    for kernel in BIAS_ENTRIES:
        got = _run(gpu, kernel, x, w, b, res, tiles)
        assert_close(got, refs[kernel], ATOL, RTOL, kernel)
        if K % 4 == 0 and M % 4 == 0:
            twin = _run(gpu, MATMUL_VEC4_TWINS[kernel], x, w, b, res, tiles)
            assert np.array_equal(got.view(np.uint32), twin.view(np.uint32)), f"{kernel}_v4 differs"


def test_bias_entries_accumulate_and_do_not_write_past_the_output(gpu):
    N, K, M = 9, 20, 33
    x, w, b, res = _case(N, K, M, 1)
    refs = _refs(x, w, b, res)
    prior = np.random.default_rng(2).standard_normal((N, M)).astype(np.float32)
    for kernel in BIAS_ENTRIES:
        got = _run(gpu, kernel, x, w, b, res, prior=prior)
        assert_close(got, prior + refs[kernel], ATOL, RTOL, f"{kernel} accumulated")
    y = upload(gpu, np.full(N * M + 64, -7.0, np.float32))
    gpu.dispatch("matmul_forward_bias", [upload(gpu, x), upload(gpu, w), upload(gpu, b), y],
                 {"N": N, "K": K, "M": M, "accumulate": 0})
    assert (download(gpu, y, (N * M + 64,))[N * M:] == -7.0).all()


@pytest.mark.parametrize("N,M,over", [(1, 1, None), (37, 130, None), (300, 65, {"WG": 256, "COLS": 2}),
                                      (5, 200, {"WG": 8, "COLS": 8})])
@pytest.mark.parametrize("accumulate", [0, 1])
def test_bias_backward_is_the_column_sum(gpu, N, M, over, accumulate):
    rng = np.random.default_rng(N + M)
    dy = rng.standard_normal((N, M)).astype(np.float32)
    prior = rng.standard_normal(M + 64).astype(np.float32)  # db plus a guard region past M
    db = upload(gpu, prior)
    gpu.dispatch("bias_backward", [upload(gpu, dy), db], {"N": N, "M": M, "accumulate": accumulate}, overrides=over)
    got = download(gpu, db, (M + 64,))
    ref = linear_backward(dy.astype(np.float64), np.zeros((N, 1)), np.zeros((1, M)))[2]
    assert_close(got[:M], ref + (prior[:M] if accumulate else 0.0), 1e-5, 1e-5, "db")
    assert np.array_equal(got[M:], prior[M:])


@pytest.mark.parametrize("N,C,V,Vp", [(1, 64, 301, 320), (7, 20, 50, 64), (33, 16, 130, 130)])
def test_tied_head_through_matmul_backward_dx_and_dw(gpu, N, C, V, Vp):
    """logits (N,V) = x @ wte[:V].T is matmul_backward_dx with dy = x, w = wte, K = V, M = C; its
    gradients: dx = dlogits @ wte[:V] is matmul_forward with x = dlogits, w = wte (K = V, M = C), and
    dwte[:V] += dlogits.T @ x is matmul_backward_dw with x = dlogits, dy = x, accumulate 1 (added to the
    embedding lookup's share). Padding rows hold NaN: never read, never written."""
    rng = np.random.default_rng(N + C + V)
    x = rng.standard_normal((N, C)).astype(np.float32)
    wte = rng.standard_normal((Vp, C)).astype(np.float32)
    wte[V:] = np.nan
    dlogits = rng.standard_normal((N, V)).astype(np.float32)
    prior = rng.standard_normal((Vp, C)).astype(np.float32)
    prior[V:] = np.nan
    dims = {"N": N, "K": V, "M": C, "accumulate": 0}
    bx, bwte, bdl = upload(gpu, x), upload(gpu, wte), upload(gpu, dlogits)
    logits, dx, dwte = empty(gpu, (N, V)), empty(gpu, (N, C)), upload(gpu, prior)
    gpu.dispatch("matmul_backward_dx", [bx, bwte, logits], dims)
    gpu.dispatch("matmul_forward", [bdl, bwte, dx], {"N": N, "K": V, "M": C, "accumulate": 0})
    gpu.dispatch("matmul_backward_dw", [bdl, bx, dwte], {**dims, "accumulate": 1})
    x64, wte64 = x.astype(np.float64), np.nan_to_num(wte.astype(np.float64))
    ref_dx, ref_dwte = tied_head_backward(dlogits.astype(np.float64), x64, wte64)
    assert_close(download(gpu, logits, (N, V)), tied_head_forward(x64, wte64, V), ATOL, RTOL, "logits")
    got = download(gpu, dwte, (Vp, C))
    assert_close(got[:V], prior[:V] + ref_dwte[:V], ATOL, RTOL, "dwte[:V]")
    assert np.isnan(got[V:]).all()
    assert_close(download(gpu, dx, (N, C)), ref_dx, ATOL, RTOL, "dx")
    # the vec4 twin reads dy and w along their rows of M = C floats and stores dx as scalars: it needs
    # C % 4 == 0 only (V = 301, 50 are not multiples of 4)
    twin = empty(gpu, (N, V))
    gpu.dispatch("matmul_backward_dx_v4", [bx, bwte, twin], dims)
    assert np.array_equal(download(gpu, twin, (N, V)).view(np.uint32), download(gpu, logits, (N, V)).view(np.uint32))
