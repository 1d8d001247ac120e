"""shaders/rmsnorm.wgsl against reference rmsnorm_forward / rmsnorm_backward (float64 reference).

Tolerances: y atol 1e-5 + rtol 1e-5, rstd rtol 1e-5; dx atol 1e-5 + rtol 1e-4, dg atol 1e-5 +
rtol 1e-4 (dg sums N rows; dx subtracts two nearly equal terms). rmsnorm_backward writes dx and dg
in one dispatch (row workgroups, then column workgroups): accumulate adds into dx only."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.reference.ops import rmsnorm_backward, rmsnorm_forward

pytestmark = pytest.mark.gpu
EPS = 1e-5


@pytest.mark.parametrize("N,C", [(1, 1), (1, 16), (7, 16), (33, 65), (256, 64), (5, 512), (3, 200)])
@pytest.mark.parametrize("accumulate", [0, 1])
def test_rmsnorm_forward_backward(gpu, N, C, accumulate):
    rng = np.random.default_rng(N * 7 + C + accumulate)
    x = (rng.standard_normal((N, C)) * 3).astype(np.float32)
    g = rng.standard_normal(C).astype(np.float32)
    dy = rng.standard_normal((N, C)).astype(np.float32)
    prior_dx = rng.standard_normal((N, C)).astype(np.float32)
    prior_dg = rng.standard_normal(C).astype(np.float32)
    dims = {"N": N, "C": C, "eps": EPS, "accumulate": accumulate, "dy_parts": 1}
    bx, bg, bdy = upload(gpu, x), upload(gpu, g), upload(gpu, dy)
    y, rstd = empty(gpu, (N, C)), empty(gpu, (N,))
    dx, dg = upload(gpu, prior_dx), upload(gpu, prior_dg)
    gpu.dispatch("rmsnorm_forward", [bx, bg, y, rstd], dims)
    gpu.dispatch("rmsnorm_backward", [bdy, bx, bg, rstd, dx, dg], dims)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    ref_y, ref_rstd = rmsnorm_forward(x64, g64, EPS)
    ref_dx, ref_dg = rmsnorm_backward(dy.astype(np.float64), x64, g64, ref_rstd)
    if accumulate:  # dg is overwritten whatever accumulate says
        ref_dx = ref_dx + prior_dx
    assert_close(download(gpu, y, (N, C)), ref_y, 1e-5, 1e-5, "y")
    assert_close(download(gpu, rstd, (N,)), ref_rstd, 0, 1e-5, "rstd")
    assert_close(download(gpu, dx, (N, C)), ref_dx, 1e-5, 1e-4, "dx")
    assert_close(download(gpu, dg, (C,)), ref_dg, 1e-5, 1e-4, "dg")


@pytest.mark.parametrize("WG,DG_COLS", [(8, 8), (64, 8), (256, 2), (64, 1), (16, 4)])
def test_rmsnorm_backward_with_more_column_workgroups_than_rows(gpu, WG, DG_COLS):
    """N = 2 row workgroups, then ceil(130 / DG_COLS) dg workgroups of DG_COLS columns (WG / DG_COLS
    invocations per column, their sums added by a tree); the last one's invocations past C must write
    nothing (a guard region after dg stays untouched)."""
    N, C = 2, 130
    rng = np.random.default_rng(WG)
    x, dy = rng.standard_normal((N, C)).astype(np.float32), rng.standard_normal((N, C)).astype(np.float32)
    g = rng.standard_normal(C).astype(np.float32)
    dims = {"N": N, "C": C, "eps": EPS, "accumulate": 0, "dy_parts": 1}
    bx, bg, bdy = upload(gpu, x), upload(gpu, g), upload(gpu, dy)
    y, rstd, dx = empty(gpu, (N, C)), empty(gpu, (N,)), empty(gpu, (N, C))
    dg_pad = upload(gpu, np.full(C + 64, 7.0, np.float32))  # dg plus a guard region past C
    over = {"WG": WG, "DG_COLS": DG_COLS}
    gpu.dispatch("rmsnorm_forward", [bx, bg, y, rstd], dims, overrides=over)
    gpu.dispatch("rmsnorm_backward", [bdy, bx, bg, rstd, dx, dg_pad], dims, overrides=over)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    ref_dx, ref_dg = rmsnorm_backward(dy.astype(np.float64), x64, g64, rmsnorm_forward(x64, g64, EPS)[1])
    got = download(gpu, dg_pad, (C + 64,))
    assert_close(download(gpu, dx, (N, C)), ref_dx, 1e-5, 1e-4, "dx")
    assert_close(got[:C], ref_dg, 1e-5, 1e-4, "dg")
    assert np.all(got[C:] == 7.0)


@pytest.mark.parametrize("parts,WG", [(3, 64), (4, 256), (2, 8)])
def test_rmsnorm_backward_sums_dy_parts(gpu, parts, WG):
    """dy_parts = k: dy is k (N,C) blocks one after the other (a split matmul's dx parts), added in
    block order; the same dx and dg as with their sum given as dy (bit for bit: the same adds)."""
    N, C = 37, 200
    rng = np.random.default_rng(parts)
    x, g = (rng.standard_normal((N, C)) * 3).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    blocks = rng.standard_normal((parts, N, C)).astype(np.float32)
    total = blocks[0].copy()
    for b in blocks[1:]:
        total = total + b  # float32, in block order: what the kernel adds
    bx, bg = upload(gpu, x), upload(gpu, g)
    y, rstd = empty(gpu, (N, C)), empty(gpu, (N,))
    dims = {"N": N, "C": C, "eps": EPS, "accumulate": 0, "dy_parts": 1}
    gpu.dispatch("rmsnorm_forward", [bx, bg, y, rstd], dims, overrides={"WG": WG})
    out = []
    for dy, n_parts in ((blocks, parts), (total, 1)):
        dx, dg = empty(gpu, (N, C)), empty(gpu, (C,))
        gpu.dispatch("rmsnorm_backward", [upload(gpu, dy), bx, bg, rstd, dx, dg], {**dims, "dy_parts": n_parts},
                     overrides={"WG": WG})
        out.append((download(gpu, dx, (N, C)), download(gpu, dg, (C,))))
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    ref_dx, ref_dg = rmsnorm_backward(blocks.astype(np.float64).sum(0), x64, g64, rmsnorm_forward(x64, g64, EPS)[1])
    assert_close(out[0][0], ref_dx, 1e-5, 1e-4, "dx")
    assert_close(out[0][1], ref_dg, 1e-5, 1e-4, "dg")
    for a, b in zip(out[0], out[1]):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
