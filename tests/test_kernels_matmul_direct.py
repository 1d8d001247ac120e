"""shaders/matmul_direct.wgsl (the barrier-free linear layers for CPU adapters) against the reference,
awkward shapes included, and bit for bit against matmul.wgsl's tiled entries where the sums are the
same (the backward and the residual forward: one fma chain per output in ascending k order)."""

from __future__ import annotations

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.gpu import registry
from pyscript_app.reference.ops import matmul_backward, matmul_forward, relu_forward, rmsnorm_forward

pytestmark = pytest.mark.gpu
ATOL, RTOL = 1e-5, 1e-4
NORM_EPS = 1e-5
SHAPES = [(1, 1, 1), (7, 5, 3), (33, 17, 65), (128, 16, 300), (130, 40, 20)]


def _inputs(N, K, M, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, K)).astype(np.float32)
    x[:, ::3] = np.maximum(x[:, ::3], 0.0)  # the relu variant's x is a relu output: exact zeros
    return x, rng.standard_normal((K, M)).astype(np.float32), rng.standard_normal((N, M)).astype(np.float32)


def _run(gpu, kernel, x, w, dy, accumulate=0, prior=None, overrides=None):
    N, K = x.shape
    M = w.shape[1]
    if prior is None:
        dx, dw = empty(gpu, (N, K)), empty(gpu, (K, M))
    else:
        dx, dw = upload(gpu, prior[0]), upload(gpu, prior[1])
    gpu.dispatch(kernel, [upload(gpu, x), upload(gpu, w), upload(gpu, dy), dx, dw],
                 {"N": N, "K": K, "M": M, "accumulate": accumulate}, overrides=overrides)
    return download(gpu, dx, (N, K)), download(gpu, dw, (K, M))


@pytest.mark.parametrize("N,K,M", SHAPES)
def test_direct_backward_matches_the_reference_and_the_tiled_kernel_bit_for_bit(gpu, N, K, M):
    x, w, dy = _inputs(N, K, M, seed=N + 7 * K + 3 * M)
    ref_dx, ref_dw = matmul_backward(dy.astype(np.float64), x.astype(np.float64), w.astype(np.float64))
    for relu in (False, True):
        suffix = "_relu" if relu else ""
        dx, dw = _run(gpu, f"matmul_backward{suffix}_direct", x, w, dy)
        want_dx = np.where(x > 0, ref_dx, 0.0) if relu else ref_dx
        assert_close(dx, want_dx, ATOL, RTOL, f"dx{suffix}")
        assert_close(dw, ref_dw, ATOL, RTOL, f"dw{suffix}")
        tiled_dx, tiled_dw = _run(gpu, f"matmul_backward{suffix}", x, w, dy)
        np.testing.assert_array_equal(dx, tiled_dx)
        np.testing.assert_array_equal(dw, tiled_dw)


def test_direct_backward_accumulates_both_outputs(gpu):
    N, K, M = 9, 20, 33
    x, w, dy = _inputs(N, K, M, seed=8)
    r = np.random.default_rng(9)
    prior = r.standard_normal((N, K)).astype(np.float32), r.standard_normal((K, M)).astype(np.float32)
    dx, dw = _run(gpu, "matmul_backward_direct", x, w, dy, accumulate=1, prior=prior)
    ref_dx, ref_dw = matmul_backward(dy.astype(np.float64), x.astype(np.float64), w.astype(np.float64))
    assert_close(dx, prior[0] + ref_dx, ATOL, RTOL, "dx accumulated")
    assert_close(dw, prior[1] + ref_dw, ATOL, RTOL, "dw accumulated")


def test_direct_backward_grid_covers_every_block_once():
    k = registry.get("matmul_backward_direct")
    for N, K, M in SHAPES:
        x, y, z = k.workgroups({"N": N, "K": K, "M": M}, None)
        blocks = -(-N // 4) * -(-K // 4) + -(-K // 4) * -(-M // 4)
        assert (x, y, z) == (-(-blocks // 64), 1, 1)  # one invocation per block, WG = 64 per workgroup


@pytest.mark.parametrize("accumulate", [0, 1])
@pytest.mark.parametrize("N,K,M", SHAPES)
def test_direct_forward_residual_matches_the_tiled_kernel_bit_for_bit(gpu, N, K, M, accumulate):
    x, w, _ = _inputs(N, K, M, seed=5 * N + K + M)
    res = np.random.default_rng(M).standard_normal((N, M)).astype(np.float32)
    prior = np.random.default_rng(N).standard_normal((N, M)).astype(np.float32)
    dims = {"N": N, "K": K, "M": M, "accumulate": accumulate}
    outs = {}
    for kernel in ("matmul_forward_residual_direct", "matmul_forward_residual"):
        y = upload(gpu, prior)
        gpu.dispatch(kernel, [upload(gpu, x), upload(gpu, w), upload(gpu, res), y], dims)
        outs[kernel] = download(gpu, y, (N, M))
    want = res.astype(np.float64) + matmul_forward(x.astype(np.float64), w.astype(np.float64))
    assert_close(outs["matmul_forward_residual_direct"], want + (prior if accumulate else 0), ATOL, RTOL, "y")
    np.testing.assert_array_equal(outs["matmul_forward_residual_direct"], outs["matmul_forward_residual"])


@pytest.mark.parametrize("N,K,M", [(1, 16, 48), (7, 16, 64), (33, 17, 65), (130, 40, 259), (5, 200, 3)])
def test_direct_forward_rmsnorm_and_relu(gpu, N, K, M):
    """y, xn and rstd as rmsnorm_forward then matmul_forward; xn and rstd start as NaN: the
    column-block-0 invocations must write every element."""
    x, w, _ = _inputs(N, K, M, seed=N * 100 + K + M)
    x *= 3
    g = np.random.default_rng(K).standard_normal(K).astype(np.float32)
    dims = {"N": N, "K": K, "M": M, "eps": NORM_EPS}
    bx, bw, bg = upload(gpu, x), upload(gpu, w), upload(gpu, g)
    ref_xn, ref_rstd = rmsnorm_forward(x.astype(np.float64), g.astype(np.float64), NORM_EPS)
    ref_y = matmul_forward(ref_xn, w.astype(np.float64))
    for kernel, ref in (("matmul_forward_rmsnorm_direct", ref_y),
                        ("matmul_forward_rmsnorm_relu_direct", relu_forward(ref_y))):
        y, xn, rstd = empty(gpu, (N, M)), empty(gpu, (N, K)), empty(gpu, (N,))
        gpu.dispatch(kernel, [bx, bw, bg, y, xn, rstd], dims)
        assert_close(download(gpu, y, (N, M)), ref, ATOL, RTOL, f"{kernel} y")
        assert_close(download(gpu, xn, (N, K)), ref_xn, 1e-5, 1e-5, f"{kernel} xn")
        assert_close(download(gpu, rstd, (N,)), ref_rstd, 0, 1e-5, f"{kernel} rstd")
