"""matmul.wgsl's split backward entries (matmul_backward_split, matmul_backward_relu_split and their
_v4 twins) followed by split_reduce.wgsl's add_parts, against reference matmul_backward: dx equal to
matmul_backward's bit for bit (the same tiles), dw part 0 + the parts added = the reference dw, for
SPLIT 1..5 (chunks that do not divide N, empty parts when N is short), every tile size (and 4 x 4
outputs per invocation), both
accumulate modes; the vec4 twins bit-identical to the scalar entries."""

import numpy as np
import pytest

from _gpu import assert_close, download, gpu, upload  # noqa: F401
from pyscript_app.gpu.registry import MATMUL_VEC4_TWINS
from pyscript_app.gpu.matmul_rules import matmul_slice_depth
from pyscript_app.reference.ops import matmul_backward

pytestmark = pytest.mark.gpu
ATOL, RTOL = 1e-5, 1e-4
TILES = [{"TM": 64, "TN": 64}, {"TM": 128, "TN": 128}, {"TM": 32, "TN": 32}, {"TM": 64, "TN": 128}]
SLICED = {"TM": 64, "TN": 64, "KGROUPS": 4}  # sliced K (matmul_tiles.wgsl's KGROUPS) with the split sums
FOUR = {"TM": 64, "TN": 64, "RPI": 4}  # 4 x 4 outputs per invocation: k-slices (and so chunks) of 16


def _case(N, K, M, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, K)).astype(np.float32)
    x[:, ::3] = np.maximum(x[:, ::3], 0.0)  # exact zeros for the relu mask
    w = rng.standard_normal((K, M)).astype(np.float32)
    dy = rng.standard_normal((N, M)).astype(np.float32)
    return x, w, dy


def _chunk(n: int, parts: int, tiles) -> int:
    """Positions per part of a sum over n cut into `parts` (matmul_stores.wgsl's split_tile: whole
    k-slices, so at 16-deep slices a short sum can fall into part 0 alone)."""
    tk = matmul_slice_depth(tiles["TM"], tiles["TN"], tiles.get("RPI", 8))
    return -(-(-(-n // parts)) // tk) * tk


def _split(gpu, kernel, x, w, dy, split, tiles, accumulate, prior_dx, prior_dw):
    """(dx, dw after add_parts, dw part 0 alone) of one split dispatch + add_parts. The parts buffer
    has a gap of 8 floats past each part (stride = K*M + 8) to show that part_stride is honoured."""
    N, K = x.shape
    M = w.shape[1]
    stride = K * M + 8
    parts = np.full(max(1, (split - 1) * stride), np.nan if not accumulate else 0.0, np.float32)
    if accumulate:  # parts start as random values that the kernel must add to
        parts[:] = np.random.default_rng(7).standard_normal(parts.shape).astype(np.float32)
    bdx, bdw, bparts = upload(gpu, prior_dx), upload(gpu, prior_dw), upload(gpu, parts)
    dims = {"N": N, "K": K, "M": M, "accumulate": accumulate, "part_stride": stride}
    gpu.dispatch(kernel, [upload(gpu, x), upload(gpu, w), upload(gpu, dy), bdx, bdw, bparts], dims,
                 overrides={**tiles, "SPLIT": split})
    part0 = download(gpu, bdw, (K, M))
    gpu.dispatch("add_parts", [bparts, bdw], {"n": K * M, "count": split - 1, "stride": stride})
    return download(gpu, bdx, (N, K)), download(gpu, bdw, (K, M)), part0, parts


@pytest.mark.parametrize("accumulate", [0, 1])
@pytest.mark.parametrize("tiles", TILES + [FOUR], ids=lambda t: f"{t['TM']}x{t['TN']}r{t.get('RPI', 8)}")
@pytest.mark.parametrize("N,K,M,split", [(130, 20, 36, 2), (130, 20, 36, 3), (1000, 36, 68, 4), (9, 8, 12, 5),
                                         (64, 16, 32, 1)])
@pytest.mark.parametrize("relu", [False, True], ids=["plain", "relu"])
def test_split_backward_plus_add_parts_is_the_backward(gpu, relu, N, K, M, split, tiles, accumulate):
    kernel = "matmul_backward_relu_split" if relu else "matmul_backward_split"
    x, w, dy = _case(N, K, M, seed=N + 10 * K + M + split)
    rng = np.random.default_rng(3)
    prior_dx = rng.standard_normal((N, K)).astype(np.float32) if accumulate else np.full((N, K), np.nan, np.float32)
    prior_dw = rng.standard_normal((K, M)).astype(np.float32) if accumulate else np.full((K, M), np.nan, np.float32)
    dx, dw, part0, parts = _split(gpu, kernel, x, w, dy, split, tiles, accumulate, prior_dx, prior_dw)

    ref_dx, ref_dw = matmul_backward(*(a.astype(np.float64) for a in (dy, x, w)))
    if relu:
        ref_dx = np.where(x > 0, ref_dx, 0.0)
    if accumulate:
        ref_dx = ref_dx + prior_dx
        stride = K * M + 8
        ref_dw = ref_dw + prior_dw + sum(parts[s * stride:s * stride + K * M].reshape(K, M).astype(np.float64)
                                         for s in range(split - 1))
    assert_close(dx, ref_dx, ATOL, RTOL, "dx")
    assert_close(dw, ref_dw, ATOL * max(1, N // 100), RTOL, "dw")  # sums of N terms of size ~1

    # dx is matmul_backward's, bit for bit; with SPLIT = 1 dw is too (one part, nothing added)
    plain = "matmul_backward_relu" if relu else "matmul_backward"
    bdx, bdw = upload(gpu, prior_dx), upload(gpu, prior_dw)
    gpu.dispatch(plain, [upload(gpu, x), upload(gpu, w), upload(gpu, dy), bdx, bdw],
                 {"N": N, "K": K, "M": M, "accumulate": accumulate}, overrides=tiles)
    assert np.array_equal(download(gpu, bdx, (N, K)).view(np.uint32), dx.view(np.uint32))
    if split == 1:
        assert np.array_equal(download(gpu, bdw, (K, M)).view(np.uint32), dw.view(np.uint32))
    elif _chunk(N, split, tiles) < N:  # part 0 alone is not the whole sum (else the parts would go untested)
        assert not np.allclose(part0, ref_dw, atol=1e-3)

    twin = _split(gpu, MATMUL_VEC4_TWINS[kernel], x, w, dy, split, tiles, accumulate, prior_dx, prior_dw)
    for mine, theirs in zip((dx, dw, part0), twin[:3]):
        assert np.array_equal(mine.view(np.uint32), theirs.view(np.uint32)), f"{kernel}_v4 differs"


def test_add_parts_adds_in_part_order_and_leaves_the_rest(gpu):
    n, stride, count = 1000, 1030, 3
    rng = np.random.default_rng(0)
    out0 = rng.standard_normal(n + 50).astype(np.float32)  # 50 floats past n: must stay as they are
    parts = rng.standard_normal(count * stride).astype(np.float32)
    bout = upload(gpu, out0)
    gpu.dispatch("add_parts", [upload(gpu, parts), bout], {"n": n, "count": count, "stride": stride})
    got = download(gpu, bout, (n + 50,))
    want = out0[:n].copy()
    for s in range(count):  # float32 adds in the kernel's order: exact
        want = (want + parts[s * stride:s * stride + n]).astype(np.float32)
    assert np.array_equal(got[:n].view(np.uint32), want.view(np.uint32))
    assert np.array_equal(got[n:], out0[n:])


@pytest.mark.parametrize("tiles", TILES + [SLICED, FOUR],
                         ids=lambda t: f"{t['TM']}x{t['TN']}k{t.get('KGROUPS', 1)}r{t.get('RPI', 8)}")
@pytest.mark.parametrize("N,K,M,dx_split,split", [(70, 20, 132, 3, 2), (33, 36, 68, 2, 1), (9, 8, 12, 5, 3)])  # K, M: _v4 multiples of 4
def test_dx_split_writes_parts_after_dx_that_sum_to_dx(gpu, N, K, M, dx_split, split, tiles):
    """DX_SPLIT: dx's sum over M in parts, part s at s * N * K of the dx binding (the consumer adds
    them); chunks of M are TK multiples (empty parts when M is short); dw as with DX_SPLIT = 1."""
    x, w, dy = _case(N, K, M, seed=N + K + M)
    stride = K * M
    outs = {}
    for kernel in ("matmul_backward_split", "matmul_backward_split_v4"):
        bdx = upload(gpu, np.full(dx_split * N * K, np.nan, np.float32))
        bdw, bparts = upload(gpu, np.full(K * M, np.nan, np.float32)), upload(gpu, np.zeros(max(1, (split - 1) * stride), np.float32))
        gpu.dispatch(kernel, [upload(gpu, x), upload(gpu, w), upload(gpu, dy), bdx, bdw, bparts],
                     {"N": N, "K": K, "M": M, "accumulate": 0, "part_stride": stride},
                     overrides={**tiles, "SPLIT": split, "DX_SPLIT": dx_split})
        gpu.dispatch("add_parts", [bparts, bdw], {"n": K * M, "count": split - 1, "stride": stride})
        outs[kernel] = (download(gpu, bdx, (dx_split, N, K)), download(gpu, bdw, (K, M)))
    blocks, dw = outs["matmul_backward_split"]
    ref_dx, ref_dw = matmul_backward(*(a.astype(np.float64) for a in (dy, x, w)))
    assert_close(blocks.astype(np.float64).sum(0), ref_dx, ATOL, RTOL, "sum of dx parts")
    assert_close(dw, ref_dw, ATOL, RTOL, "dw")
    if _chunk(M, dx_split, tiles) < M:
        assert not np.allclose(blocks[0], ref_dx, atol=1e-3)  # part 0 alone is not dx
    for a, b in zip(outs["matmul_backward_split"], outs["matmul_backward_split_v4"]):
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), "the _v4 twin differs"
