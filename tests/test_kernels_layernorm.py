"""shaders/layernorm.wgsl against reference layernorm_forward / layernorm_backward (float64 reference).

Tolerances (rmsnorm.wgsl's): y atol 1e-5 + rtol 1e-5, mean atol 1e-6 + rtol 1e-5, rstd rtol 1e-5;
dx atol 1e-5 + rtol 1e-4, dw and db atol 1e-5 + rtol 1e-4 (they sum N rows; dx subtracts nearly equal
terms). layernorm_backward writes dx, dw and db in one dispatch (row workgroups, then column
workgroups): accumulate adds into dx only."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.reference.ops_gpt2 import layernorm_backward, layernorm_forward

pytestmark = pytest.mark.gpu
EPS = 1e-5


def _data(N, C, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C)) * 3 + offset).astype(np.float32)
    w = (1 + 0.5 * rng.standard_normal(C)).astype(np.float32)
    b = rng.standard_normal(C).astype(np.float32)
    dy = rng.standard_normal((N, C)).astype(np.float32)
    return x, w, b, dy


def _run(gpu, x, w, b, dy, accumulate, prior_dx, overrides=None, dy_parts=1):
    N, C = x.shape
    dims = {"N": N, "C": C, "eps": EPS, "accumulate": accumulate, "dy_parts": dy_parts}
    bx, bw, bb = upload(gpu, x), upload(gpu, w), upload(gpu, b)
    y, mean, rstd = empty(gpu, (N, C)), empty(gpu, (N,)), empty(gpu, (N,))
    dx, dw, db = upload(gpu, prior_dx), empty(gpu, (C,)), empty(gpu, (C,))
    gpu.dispatch("layernorm_forward", [bx, bw, bb, y, mean, rstd], dims, overrides=overrides)
    gpu.dispatch("layernorm_backward", [upload(gpu, dy), bx, bw, mean, rstd, dx, dw, db], dims, overrides=overrides)
    return [download(gpu, buf, shape) for buf, shape in
            ((y, (N, C)), (mean, (N,)), (rstd, (N,)), (dx, (N, C)), (dw, (C,)), (db, (C,)))]


@pytest.mark.parametrize("N,C", [(1, 1), (7, 16), (33, 65), (5, 768), (3, 200)])
@pytest.mark.parametrize("accumulate", [0, 1])
def test_layernorm_forward_backward(gpu, N, C, accumulate):
    x, w, b, dy = _data(N, C, N * 7 + C + accumulate, offset=20.0 if C == 200 else 0.0)  # |mean| >> std too
    prior_dx = np.random.default_rng(C).standard_normal((N, C)).astype(np.float32)
    y, mean, rstd, dx, dw, db = _run(gpu, x, w, b, dy, accumulate, prior_dx)
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    ref_y, ref_mean, ref_rstd = layernorm_forward(x64, w64, b64, EPS)
    ref_dx, ref_dw, ref_db = layernorm_backward(dy64, x64, w64, ref_mean, ref_rstd)
    if accumulate:  # dw and db are overwritten whatever accumulate says
        ref_dx = ref_dx + prior_dx
    assert_close(y, ref_y, 1e-5, 1e-5, "y")
    assert_close(mean, ref_mean, 1e-6, 1e-5, "mean")
    assert_close(rstd, ref_rstd, 0, 1e-5, "rstd")
    assert_close(dx, ref_dx, 1e-5, 1e-4, "dx")
    assert_close(dw, ref_dw, 1e-5, 1e-4, "dw")
    assert_close(db, ref_db, 1e-5, 1e-4, "db")


@pytest.mark.parametrize("WG,DG_COLS", [(8, 8), (256, 2), (16, 4)])
def test_layernorm_backward_column_workgroups_and_gpu_overrides(gpu, WG, DG_COLS):
    """N = 2 row workgroups, then ceil(130 / DG_COLS) column workgroups (the GPU overrides (256, 2)
    included); the last one's invocations past C write nothing (a guard region after dw stays)."""
    N, C = 2, 130
    x, w, b, dy = _data(N, C, WG)
    dims = {"N": N, "C": C, "eps": EPS, "accumulate": 0, "dy_parts": 1}
    over = {"WG": WG, "DG_COLS": DG_COLS}
    bx, bw = upload(gpu, x), upload(gpu, w)
    y, mean, rstd, dx = empty(gpu, (N, C)), empty(gpu, (N,)), empty(gpu, (N,)), empty(gpu, (N, C))
    dw_pad, db = upload(gpu, np.full(C + 64, 7.0, np.float32)), empty(gpu, (C,))
    gpu.dispatch("layernorm_forward", [bx, bw, upload(gpu, b), y, mean, rstd], dims, overrides=over)
    gpu.dispatch("layernorm_backward", [upload(gpu, dy), bx, bw, mean, rstd, dx, dw_pad, db], dims, overrides=over)
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    ref_y, ref_mean, ref_rstd = layernorm_forward(x64, w64, b64, EPS)
    ref_dx, ref_dw, ref_db = layernorm_backward(dy64, x64, w64, ref_mean, ref_rstd)
    got = download(gpu, dw_pad, (C + 64,))
    assert_close(download(gpu, y, (N, C)), ref_y, 1e-5, 1e-5, "y")
    assert_close(download(gpu, dx, (N, C)), ref_dx, 1e-5, 1e-4, "dx")
    assert_close(got[:C], ref_dw, 1e-5, 1e-4, "dw")
    assert_close(download(gpu, db, (C,)), ref_db, 1e-5, 1e-4, "db")
    assert np.all(got[C:] == 7.0)


def test_layernorm_backward_sums_dy_parts(gpu):
    """dy_parts = 3: dy is 3 (N,C) blocks one after the other, added in block order; the same bits as
    their float32 sum given as dy."""
    N, C, parts = 9, 100, 3
    x, w, b, _ = _data(N, C, 5)
    blocks = np.random.default_rng(6).standard_normal((parts, N, C)).astype(np.float32)
    total = blocks[0] + blocks[1] + blocks[2]  # float32, in block order: what the kernel adds
    zeros = np.zeros((N, C), np.float32)
    split = _run(gpu, x, w, b, blocks, 0, zeros, dy_parts=parts)
    whole = _run(gpu, x, w, b, total, 0, zeros)
    for a, c in zip(split[3:], whole[3:]):
        assert np.array_equal(a.view(np.uint32), c.view(np.uint32))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    _, ref_mean, ref_rstd = layernorm_forward(x64, w64, b.astype(np.float64), EPS)
    ref_dx, _, ref_db = layernorm_backward(blocks.astype(np.float64).sum(0), x64, w64, ref_mean, ref_rstd)
    assert_close(split[3], ref_dx, 1e-5, 1e-4, "dx")
    assert_close(split[5], ref_db, 1e-5, 1e-4, "db")
