"""shaders/matmul.wgsl against reference matmul_forward / matmul_backward, awkward shapes included,
at every tile size (overrides TM, TN) and for the fused entries (relu, residual, dx + dw in one,
rmsnorm folded into the forward), and the vec4-load twins (entries "<name>_v4"): bit-identical to
their scalar entry wherever their precondition K % 4 == M % 4 == 0 holds.

Tolerance: atol 1e-5 + rtol 1e-4 · |ref| (inputs ~N(0,1), sums of up to K=1024 f32 products in a
different order than numpy's float32 BLAS; the reference is evaluated in float64)."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.gpu.registry import MATMUL_VEC4_TWINS
from pyscript_app.gpu.matmul_rules import MATMUL_TILE_SIZES, matmul_tiles
from pyscript_app.reference.ops import matmul_backward, matmul_forward, relu_forward, rmsnorm_forward

pytestmark = pytest.mark.gpu
ATOL, RTOL = 1e-5, 1e-4

SHAPES = [(1, 1, 1), (7, 5, 3), (33, 17, 65), (64, 16, 64), (65, 64, 129), (32, 16, 1024), (1, 64, 192)]


def _inputs(N, K, M, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, K)).astype(np.float32)
    w = rng.standard_normal((K, M)).astype(np.float32)
    dy = rng.standard_normal((N, M)).astype(np.float32)
    return x, w, dy


TILES = [{"TM": 32, "TN": 32}, {"TM": 128, "TN": 128}, {"TM": 128, "TN": 32}, {"TM": 32, "TN": 64}]
FUSED_SHAPES = [(1, 1, 1), (7, 5, 3), (33, 17, 65), (65, 64, 129), (130, 40, 20)]


def _f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


@pytest.mark.parametrize("N,K,M", SHAPES)
def test_matmul_forward_and_backward(gpu, N, K, M):
    _check_three_entries(gpu, N, K, M, None)


@pytest.mark.parametrize("tiles", TILES, ids=lambda t: f"{t['TM']}x{t['TN']}")
@pytest.mark.parametrize("N,K,M", [(33, 17, 65), (130, 40, 259)])
def test_matmul_every_tile_size(gpu, N, K, M, tiles):
    _check_three_entries(gpu, N, K, M, tiles)


def _check_three_entries(gpu, N, K, M, tiles):
    x, w, dy = _inputs(N, K, M, seed=N * 1000 + K * 10 + M)
    dims = {"N": N, "K": K, "M": M, "accumulate": 0}
    bx, bw, bdy = upload(gpu, x), upload(gpu, w), upload(gpu, dy)
    y, dx, dw = empty(gpu, (N, M)), empty(gpu, (N, K)), empty(gpu, (K, M))
    gpu.dispatch("matmul_forward", [bx, bw, y], dims, overrides=tiles)
    gpu.dispatch("matmul_backward_dx", [bdy, bw, dx], dims, overrides=tiles)
    gpu.dispatch("matmul_backward_dw", [bx, bdy, dw], dims, overrides=tiles)
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


@pytest.mark.parametrize("tiles", TILES[:2], ids=lambda t: f"{t['TM']}x{t['TN']}")
@pytest.mark.parametrize("N,K,M", FUSED_SHAPES)
def test_matmul_forward_residual(gpu, N, K, M, tiles):
    x, w, res = _inputs(N, K, M, seed=N + 7 * K + 11 * M)
    dims = {"N": N, "K": K, "M": M, "accumulate": 0}
    y_res = empty(gpu, (N, M))
    gpu.dispatch("matmul_forward_residual", [upload(gpu, x), upload(gpu, w), upload(gpu, res), y_res], dims,
                 overrides=tiles)
    x64, w64, res64 = _f64(x, w, res)
    assert_close(download(gpu, y_res, (N, M)), res64 + matmul_forward(x64, w64), ATOL, RTOL, "res + x @ w")


@pytest.mark.parametrize("tiles", TILES, ids=lambda t: f"{t['TM']}x{t['TN']}")
@pytest.mark.parametrize("N,K,M", FUSED_SHAPES)
def test_matmul_backward_fused_dx_dw(gpu, N, K, M, tiles):
    x, w, dy = _inputs(N, K, M, seed=3 * N + K + 5 * M)
    x[:, ::3] = np.maximum(x[:, ::3], 0.0)  # the relu variant's x is a relu output: many exact zeros
    x[0, 0] = 0.0
    dims = {"N": N, "K": K, "M": M, "accumulate": 0}
    bx, bw, bdy = upload(gpu, x), upload(gpu, w), upload(gpu, dy)
    dx, dw, dx_r, dw_r = empty(gpu, (N, K)), empty(gpu, (K, M)), empty(gpu, (N, K)), empty(gpu, (K, M))
    gpu.dispatch("matmul_backward", [bx, bw, bdy, dx, dw], dims, overrides=tiles)
    gpu.dispatch("matmul_backward_relu", [bx, bw, bdy, dx_r, dw_r], dims, overrides=tiles)
    ref_dx, ref_dw = matmul_backward(*_f64(dy, x, w))
    assert_close(download(gpu, dx, (N, K)), ref_dx, ATOL, RTOL, "dx")
    assert_close(download(gpu, dw, (K, M)), ref_dw, ATOL, RTOL, "dw")
    assert_close(download(gpu, dx_r, (N, K)), np.where(x > 0, ref_dx, 0.0), ATOL, RTOL, "dx * (x > 0)")
    assert_close(download(gpu, dw_r, (K, M)), ref_dw, ATOL, RTOL, "dw (relu variant)")


def test_matmul_backward_fused_accumulates_both_outputs(gpu):
    N, K, M = 9, 20, 33
    x, w, dy = _inputs(N, K, M, seed=8)
    r = np.random.default_rng(9)
    prior_dx, prior_dw = r.standard_normal((N, K)).astype(np.float32), r.standard_normal((K, M)).astype(np.float32)
    dx, dw = upload(gpu, prior_dx), upload(gpu, prior_dw)
    gpu.dispatch("matmul_backward", [upload(gpu, x), upload(gpu, w), upload(gpu, dy), dx, dw],
                 {"N": N, "K": K, "M": M, "accumulate": 1})
    ref_dx, ref_dw = matmul_backward(*_f64(dy, x, w))
    assert_close(download(gpu, dx, (N, K)), prior_dx + ref_dx, ATOL, RTOL, "dx accumulated")
    assert_close(download(gpu, dw, (K, M)), prior_dw + ref_dw, ATOL, RTOL, "dw accumulated")


def test_matmul_tiles_pick_big_tiles_for_big_outputs_only():
    assert matmul_tiles((4096, 4096)) == {"TM": 128, "TN": 128}
    assert matmul_tiles((2048, 2048)) == {"TM": 128, "TN": 128}  # 256 tiles of 128
    assert matmul_tiles((2048, 512)) == {"TM": 64, "TN": 64}  # 64 tiles of 128: too few for big tiles
    assert matmul_tiles((1024, 256)) == {"TM": 64, "TN": 64}  # 16 tiles of 128
    assert matmul_tiles((16, 16)) == {"TM": 64, "TN": 64}
    # the outputs of one dispatch count together
    assert matmul_tiles((2048, 1024), (1024, 2048)) == {"TM": 128, "TN": 128}
    assert matmul_tiles((1024, 512), (512, 1024)) == {"TM": 64, "TN": 64}
    assert set(matmul_tiles((1, 1)).values()) <= set(MATMUL_TILE_SIZES)


NORM_EPS = 1e-5


@pytest.mark.parametrize("tiles", [None] + TILES, ids=lambda t: f"{t['TM']}x{t['TN']}" if t else "default")
@pytest.mark.parametrize("N,K,M", [(1, 16, 48), (7, 16, 64), (33, 17, 65), (130, 40, 259), (5, 200, 3)])
def test_matmul_forward_rmsnorm_and_relu(gpu, N, K, M, tiles):
    """y = rmsnorm(x) @ w (and relu of it): y, xn and rstd as rmsnorm_forward then matmul_forward.
    xn and rstd start as NaN: the tile-column-0 workgroups must write every element."""
    x, w, _ = _inputs(N, K, M, seed=N * 100 + K + M)
    x *= 3
    g = np.random.default_rng(K).standard_normal(K).astype(np.float32)
    dims = {"N": N, "K": K, "M": M, "eps": NORM_EPS}
    bx, bw, bg = upload(gpu, x), upload(gpu, w), upload(gpu, g)
    ref_xn, ref_rstd = rmsnorm_forward(*_f64(x, g), NORM_EPS)
    ref_y = matmul_forward(ref_xn, w.astype(np.float64))
    for kernel, ref in (("matmul_forward_rmsnorm", ref_y), ("matmul_forward_rmsnorm_relu", relu_forward(ref_y))):
        y, xn, rstd = empty(gpu, (N, M)), empty(gpu, (N, K)), empty(gpu, (N,))
        gpu.dispatch(kernel, [bx, bw, bg, y, xn, rstd], dims, overrides=tiles)
        assert_close(download(gpu, y, (N, M)), ref, ATOL, RTOL, f"{kernel} y")
        assert_close(download(gpu, xn, (N, K)), ref_xn, 1e-5, 1e-5, f"{kernel} xn")
        assert_close(download(gpu, rstd, (N,)), ref_rstd, 0, 1e-5, f"{kernel} rstd")


def test_backward_tiles_need_enough_big_tiles_in_both_products():
    from pyscript_app.gpu.matmul_rules import matmul_backward_tiles
    assert matmul_backward_tiles(4096, 4096, 4096) == {"TM": 128, "TN": 128}
    # large fc_proj: dx (2048,2048) has 256 big tiles but dw (2048,512) only 64 -> small tiles
    assert matmul_backward_tiles(2048, 2048, 512) == {"TM": 64, "TN": 64}
    assert matmul_backward_tiles(64, 16, 16) == {"TM": 64, "TN": 64}


# --- vec4-load twins ------------------------------------------------------------------------------
# Shapes inside the twins' precondition (K % 4 == M % 4 == 0) but ragged against every tile: N is free
# (65 and 1: rows are never an operand's contiguous dimension), K = 20 and 36 are not multiples of
# TK = 8, and M cuts the last column tile. 32-wide tiles take TK = 4 (one vec4 of k per row).
V4_SHAPES = [(68, 20, 36), (65, 36, 260), (1, 4, 4)]
OUR_TWINS = [k for k in MATMUL_VEC4_TWINS if "bias" not in k]  # GPT-2's bias entries: test_kernels_matmul_bias.py
V4_TILES = [{"TM": 64, "TN": 64}, {"TM": 128, "TN": 128}, {"TM": 32, "TN": 32}, {"TM": 128, "TN": 32},
            {"TM": 64, "TN": 128}]  # the last: what GPUs take for some big products (matmul_rules.matmul_forward_overrides)


def _v4_case(kernel, N, K, M, accumulate, seed):
    """(inputs, prior outputs, uniform values, reference outputs) of one matmul entry; prior holds
    the outputs' starting contents (random when accumulating, else NaN: every element must be written)."""
    x, w, dy = _inputs(N, K, M, seed)
    x[:, ::3] = np.maximum(x[:, ::3], 0.0)  # exact zeros for the relu mask
    x64, w64, dy64 = _f64(x, w, dy)
    dims = {"N": N, "K": K, "M": M, "accumulate": accumulate}
    if kernel.startswith("matmul_forward_rmsnorm"):
        g = np.random.default_rng(seed + 1).standard_normal(K).astype(np.float32)
        xn, rstd = rmsnorm_forward(x64, g.astype(np.float64), NORM_EPS)
        y = matmul_forward(xn, w64)
        y = relu_forward(y) if kernel.endswith("relu") else y
        return [x, w, g], [np.full(s, np.nan, np.float32) for s in ((N, M), (N, K), (N,))], \
            {"N": N, "K": K, "M": M, "eps": NORM_EPS}, [y, xn, rstd]
    dx, dw = matmul_backward(dy64, x64, w64)
    res = np.random.default_rng(seed + 2).standard_normal((N, M)).astype(np.float32)
    inputs, refs = {
        "matmul_forward": ([x, w], [x64 @ w64]),
        "matmul_backward_dx": ([dy, w], [dx]),
        "matmul_backward_dw": ([x, dy], [dw]),
        "matmul_forward_residual": ([x, w, res], [res.astype(np.float64) + x64 @ w64]),
        "matmul_backward": ([x, w, dy], [dx, dw]),
        "matmul_backward_relu": ([x, w, dy], [np.where(x > 0, dx, 0.0), dw]),
    }[kernel]
    rng = np.random.default_rng(seed + 3)
    prior = [rng.standard_normal(r.shape).astype(np.float32) if accumulate else np.full(r.shape, np.nan, np.float32)
             for r in refs]
    if accumulate:
        refs = [p.astype(np.float64) + r for p, r in zip(prior, refs)]
    return inputs, prior, dims, refs


def _run(gpu, kernel, inputs, prior, dims, tiles):
    outs = [upload(gpu, p) for p in prior]
    gpu.dispatch(kernel, [upload(gpu, a) for a in inputs] + outs, dims, overrides=tiles)
    return [download(gpu, o, p.shape) for o, p in zip(outs, prior)]


def _check_twin(gpu, kernel, N, K, M, tiles, accumulate):
    inputs, prior, dims, refs = _v4_case(kernel, N, K, M, accumulate, seed=N * 7 + K * 3 + M)
    scalar = _run(gpu, kernel, inputs, prior, dims, tiles)
    vec4 = _run(gpu, MATMUL_VEC4_TWINS[kernel], inputs, prior, dims, tiles)
    for i, (s, v, ref) in enumerate(zip(scalar, vec4, refs)):
        tol = (ATOL, RTOL) if i == 0 or not kernel.startswith("matmul_forward_rmsnorm") else (1e-5, 1e-5)
        assert_close(v, ref, *tol, f"{kernel}_v4 output {i}")
        assert np.array_equal(s.view(np.uint32), v.view(np.uint32)), f"{kernel}_v4 output {i} differs from {kernel}"


@pytest.mark.parametrize("tiles", V4_TILES, ids=lambda t: f"{t['TM']}x{t['TN']}")
@pytest.mark.parametrize("N,K,M", V4_SHAPES)
@pytest.mark.parametrize("kernel", sorted(k for k in OUR_TWINS if "split" not in k))  # split: own file
def test_vec4_twin_matches_reference_and_is_bit_identical_to_scalar_entry(gpu, kernel, N, K, M, tiles):
    _check_twin(gpu, kernel, N, K, M, tiles, accumulate=0)


@pytest.mark.parametrize("tiles", V4_TILES[:3], ids=lambda t: f"{t['TM']}x{t['TN']}")
@pytest.mark.parametrize("kernel", sorted(k for k in OUR_TWINS if "rmsnorm" not in k and "split" not in k))
def test_vec4_twin_accumulates_like_scalar_entry(gpu, kernel, tiles):
    _check_twin(gpu, kernel, 68, 20, 36, tiles, accumulate=1)



# --- sliced K (KGROUPS): the workgroup's groups multiply consecutive k-slices, added in group order ---
# K = 20, 36, 100 give 3, 5, 13 slices of 8 (4 at 32-wide tiles): the last round has groups past the
# end (zeros). Outputs match the reference, and each twin stays bit-identical to its scalar entry.
KGROUP_TILES = [{"TM": 64, "TN": 64, "KGROUPS": 2}, {"TM": 64, "TN": 64, "KGROUPS": 4},
                {"TM": 32, "TN": 32, "KGROUPS": 8}, {"TM": 32, "TN": 64, "KGROUPS": 3},
                {"TM": 32, "TN": 32, "KGROUPS": 4, "RPI": 4}, {"TM": 64, "TN": 64, "KGROUPS": 2, "RPI": 4}]


@pytest.mark.parametrize("tiles", KGROUP_TILES, ids=lambda t: f"{t['TM']}x{t['TN']}k{t['KGROUPS']}r{t.get('RPI', 8)}")
@pytest.mark.parametrize("N,K,M", [(68, 20, 36), (65, 100, 132)])
@pytest.mark.parametrize("kernel", sorted(k for k in OUR_TWINS if "rmsnorm" not in k and "split" not in k))
def test_sliced_k_matches_reference(gpu, kernel, N, K, M, tiles):
    _check_twin(gpu, kernel, N, K, M, tiles, accumulate=0)


@pytest.mark.parametrize("kernel", ["matmul_forward_residual", "matmul_backward_relu"])
@pytest.mark.parametrize("rpi", [8, 4])
def test_sliced_k_accumulates(gpu, kernel, rpi):
    _check_twin(gpu, kernel, 68, 36, 36, {"TM": 64, "TN": 64, "KGROUPS": 4, "RPI": rpi}, accumulate=1)


def test_sliced_k_sums_differ_from_one_group_only_by_order(gpu):
    """KGROUPS = 4 is not KGROUPS = 1 with extra steps: its sums are grouped differently (a test that
    passed with the groups ignored would see identical bits)."""
    x, w, _ = _inputs(64, 256, 64, seed=11)
    outs = []
    for kg in (1, 4):
        y = empty(gpu, (64, 64))
        gpu.dispatch("matmul_forward", [upload(gpu, x), upload(gpu, w), y], {"N": 64, "K": 256, "M": 64, "accumulate": 0},
                     overrides={"TM": 64, "TN": 64, "KGROUPS": kg})
        outs.append(download(gpu, y, (64, 64)))
    ref = x.astype(np.float64) @ w.astype(np.float64)
    assert_close(outs[1], ref, ATOL, RTOL, "y")
    assert not np.array_equal(outs[0].view(np.uint32), outs[1].view(np.uint32))


@pytest.mark.parametrize("kernel", ["matmul_forward_v4", "matmul_forward_rmsnorm_v4", "matmul_forward_residual_v4"])
def test_64_by_128_tiles_give_the_same_bits_as_128_by_128(gpu, kernel):
    """GPUs take 64 x 128 tiles for some big forward products (matmul_rules.matmul_forward_overrides): every
    output's sum (and rmsnorm's rstd) runs over k in the same order as with square tiles."""
    scalar = kernel[:-3]
    inputs, prior, dims, _ = _v4_case(scalar, 130, 40, 260, 0, seed=3)
    square = _run(gpu, kernel, inputs, prior, dims, {"TM": 128, "TN": 128})
    wide = _run(gpu, kernel, inputs, prior, dims, {"TM": 64, "TN": 128})
    for s, w in zip(square, wide):
        assert np.array_equal(s.view(np.uint32), w.view(np.uint32))


# --- 4 x 4 outputs per invocation (RPI 4): one 4 x 4 quad each, k-slices of 16 (8 at 32-wide tiles) ---
# K = 20, 36, 100: 2, 3 and 7 slices of 16, the last one ragged; N and M cut the last tiles.
RPI4_TILES = [{"TM": 64, "TN": 64, "RPI": 4}, {"TM": 32, "TN": 32, "RPI": 4}, {"TM": 64, "TN": 32, "RPI": 4},
              {"TM": 128, "TN": 32, "RPI": 4}]


@pytest.mark.parametrize("tiles", RPI4_TILES, ids=lambda t: f"{t['TM']}x{t['TN']}r4")
@pytest.mark.parametrize("N,K,M", [(68, 20, 36), (65, 100, 132), (1, 4, 4)])
@pytest.mark.parametrize("kernel", sorted(k for k in OUR_TWINS if "split" not in k))
def test_4x4_outputs_per_invocation_match_reference(gpu, kernel, N, K, M, tiles):
    _check_twin(gpu, kernel, N, K, M, tiles, accumulate=0)


@pytest.mark.parametrize("kernel", ["matmul_forward_residual", "matmul_backward_relu"])
def test_4x4_outputs_per_invocation_accumulate(gpu, kernel):
    _check_twin(gpu, kernel, 68, 36, 36, {"TM": 32, "TN": 32, "RPI": 4}, accumulate=1)


@pytest.mark.parametrize("kernel", ["matmul_forward_v4", "matmul_forward_residual_v4", "matmul_backward_relu_v4"])
def test_4x4_outputs_per_invocation_give_the_same_bits_as_8x8(gpu, kernel):
    """GPUs take RPI 4 for forward products with few outputs (matmul_rules.matmul_small_outputs): each output
    still sums k in order, one FMA at a time, so only who computes it changes, not its bits. (The rmsnorm
    entries' rstd sums squares in TK groups, which RPI 4 makes 16 deep: those differ in rounding.)"""
    inputs, prior, dims, _ = _v4_case(kernel[:-3], 130, 100, 260, 0, seed=5)
    eight = _run(gpu, kernel, inputs, prior, dims, {"TM": 64, "TN": 64})
    four = _run(gpu, kernel, inputs, prior, dims, {"TM": 64, "TN": 64, "RPI": 4})
    for e, f in zip(eight, four):
        assert np.array_equal(e.view(np.uint32), f.view(np.uint32))
