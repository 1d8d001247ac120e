"""shaders/matmul.wgsl against reference matmul_forward / matmul_backward, awkward shapes included.

Tolerance: atol 1e-5 + rtol 1e-4 · |ref| (inputs ~N(0,1), sums of up to K=1024 f32 products in a
different order than numpy's float32 BLAS; the reference is evaluated in float64)."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.reference.ops import matmul_backward, matmul_forward

pytestmark = pytest.mark.gpu
ATOL, RTOL = 1e-5, 1e-4

SHAPES = [(1, 1, 1), (7, 5, 3), (33, 17, 65), (64, 16, 64), (65, 64, 129), (32, 16, 1024), (1, 64, 192)]


def _inputs(N, K, M, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, K)).astype(np.float32)
    w = rng.standard_normal((K, M)).astype(np.float32)
    dy = rng.standard_normal((N, M)).astype(np.float32)
    return x, w, dy


@pytest.mark.parametrize("N,K,M", SHAPES)
def test_matmul_forward_and_backward(gpu, N, K, M):
    x, w, dy = _inputs(N, K, M, seed=N * 1000 + K * 10 + M)
    dims = {"N": N, "K": K, "M": M, "accumulate": 0}
    bx, bw, bdy = upload(gpu, x), upload(gpu, w), upload(gpu, dy)
    y, dx, dw = empty(gpu, (N, M)), empty(gpu, (N, K)), empty(gpu, (K, M))
    gpu.dispatch("matmul_forward", [bx, bw, y], dims)
    gpu.dispatch("matmul_backward_dx", [bdy, bw, dx], dims)
    gpu.dispatch("matmul_backward_dw", [bx, bdy, dw], dims)
    ref_dx, ref_dw = matmul_backward(dy.astype(np.float64), x.astype(np.float64), w.astype(np.float64))
    assert_close(download(gpu, y, (N, M)), matmul_forward(x.astype(np.float64), w.astype(np.float64)), ATOL, RTOL, "y")
    assert_close(download(gpu, dx, (N, K)), ref_dx, ATOL, RTOL, "dx")
    assert_close(download(gpu, dw, (K, M)), ref_dw, ATOL, RTOL, "dw")


def test_matmul_accumulate_adds_into_output(gpu):
    N, K, M = 9, 20, 33
    x, w, dy = _inputs(N, K, M, seed=5)
    prior = np.random.default_rng(6).standard_normal((K, M)).astype(np.float32)
    dw = upload(gpu, prior)
    gpu.dispatch("matmul_backward_dw", [upload(gpu, x), upload(gpu, dy), dw], {"N": N, "K": K, "M": M, "accumulate": 1})
    ref = prior.astype(np.float64) + x.T.astype(np.float64) @ dy.astype(np.float64)
    assert_close(download(gpu, dw, (K, M)), ref, ATOL, RTOL, "dw accumulated")


def test_matmul_does_not_write_past_the_output(gpu):
    """A guard canary: the element after y (N*M) keeps its value although the grid rounds up."""
    N, K, M = 7, 5, 3
    x, w, _ = _inputs(N, K, M, seed=1)
    y = empty(gpu, (N * M + 64,), fill=-7.0)
    gpu.dispatch("matmul_forward", [upload(gpu, x), upload(gpu, w), y], {"N": N, "K": K, "M": M, "accumulate": 0})
    assert (download(gpu, y, (N * M + 64,))[N * M:] == -7.0).all()
