"""shaders/attention.wgsl against reference attention_forward / attention_backward (float64 reference).

Tolerances: y atol 1e-5 + rtol 1e-4, lse atol 1e-5 + rtol 1e-5 (online softmax in f32, exps in a
different order); dqkv atol 2e-5 + rtol 2e-4 (sums of T products of recomputed probabilities).
Inputs: qkv ~ N(0, 1.5^2) so the softmax is far from uniform; dy ~ N(0, 1).
Shapes cover one token, T not a multiple of the tile (5, 13, 33), D = 4 .. 64 and H = 2 .. 8."""

import math

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.gpu.attention_ops import tile_rows
from pyscript_app.reference.ops_attention import attention_backward, attention_forward

pytestmark = pytest.mark.gpu
FWD_ATOL, FWD_RTOL = 1e-5, 1e-4
LSE_ATOL, LSE_RTOL = 1e-5, 1e-5
BWD_ATOL, BWD_RTOL = 2e-5, 2e-4

SHAPES = [(1, 1, 16, 4), (2, 5, 16, 4), (1, 13, 64, 4), (1, 9, 16, 1), (3, 33, 64, 2), (2, 32, 128, 4), (1, 64, 256, 8)]


def _world(B, T, C, seed):
    rng = np.random.default_rng(seed)
    qkv = (rng.standard_normal((B, T, 3 * C)) * 1.5).astype(np.float32)
    dy = rng.standard_normal((B, T, C)).astype(np.float32)
    return qkv, dy


def _run(gpu, qkv, dy, H, BQ=None):
    """Dispatch forward and backward (dq, dk, dv in one dispatch)  ->  y, lse, dqkv as numpy arrays."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    D = C // H
    dims = {"B": B, "T": T, "C": C, "H": H}
    over = {"D": D, "BQ": BQ or tile_rows(D)}
    bqkv, bdy = upload(gpu, qkv), upload(gpu, dy)
    y, lse = empty(gpu, (B, T, C)), empty(gpu, (B, H, T))
    dqkv = upload(gpu, np.full(qkv.shape, np.nan, np.float32))  # every element must be overwritten
    gpu.dispatch("attention_forward", [bqkv, y, lse], dims, overrides=over)
    gpu.dispatch("attention_backward", [bdy, bqkv, y, lse, dqkv], dims, overrides=over)
    return download(gpu, y, (B, T, C)), download(gpu, lse, (B, H, T)), download(gpu, dqkv, qkv.shape)


def _check(gpu, B, T, C, H, seed, BQ=None):
    qkv, dy = _world(B, T, C, seed)
    y, lse, dqkv = _run(gpu, qkv, dy, H, BQ)
    qkv64, dy64 = qkv.astype(np.float64), dy.astype(np.float64)
    ref_y, ref_lse = attention_forward(qkv64, H)
    ref_dqkv = attention_backward(dy64, qkv64, ref_y, ref_lse, H)
    assert_close(y, ref_y, FWD_ATOL, FWD_RTOL, "y")
    assert_close(lse, ref_lse, LSE_ATOL, LSE_RTOL, "lse")
    for name, cols in (("dq", slice(0, C)), ("dk", slice(C, 2 * C)), ("dv", slice(2 * C, 3 * C))):
        assert_close(dqkv[..., cols], ref_dqkv[..., cols], BWD_ATOL, BWD_RTOL, name)


@pytest.mark.parametrize("B,T,C,H", SHAPES)
def test_attention_forward_backward_match_reference(gpu, B, T, C, H):
    _check(gpu, B, T, C, H, seed=B * 1000 + T * 10 + C + H)


@pytest.mark.parametrize("D,BQ", [(12, 3), (20, 16), (64, 1), (8, 5)])
def test_attention_any_head_width_and_tile(gpu, D, BQ):
    # D = 12, 20: D/4 odd; BQ = 1, 3, 5: tiles of any height (gpu/attention_ops.py only picks 8 or 16)
    _check(gpu, 2, 11, 2 * D, 2, seed=D * 7 + BQ, BQ=BQ)


def test_attention_decode_matches_forward_rows(gpu):
    """attention_decode at pos = 0..Tmax-1 (caches filled by the kernel itself) gives forward's rows."""
    C, H, Tmax = 48, 4, 9  # D = 12; pos runs 0 .. Tmax - 1
    D = C // H
    qkv, _ = _world(1, Tmax, C, seed=11)
    ref_y, _ = attention_forward(qkv.astype(np.float64), H)
    k_cache, v_cache = empty(gpu, (H, Tmax, D)), empty(gpu, (H, Tmax, D))
    over = {"D": D, "BQ": tile_rows(D)}
    for pos in range(Tmax):
        row, y_row = upload(gpu, qkv[0, pos]), empty(gpu, (C,))
        gpu.dispatch("attention_decode", [row, k_cache, v_cache, y_row],
                     {"C": C, "H": H, "Tmax": Tmax, "pos": pos}, overrides=over)
        assert_close(download(gpu, y_row, (C,)), ref_y[0, pos], FWD_ATOL, FWD_RTOL, f"y_row at pos {pos}")
    k_ref = qkv[0, :, C : 2 * C].reshape(Tmax, H, D).transpose(1, 0, 2)
    v_ref = qkv[0, :, 2 * C :].reshape(Tmax, H, D).transpose(1, 0, 2)
    assert np.array_equal(download(gpu, k_cache, (H, Tmax, D)), k_ref)
    assert np.array_equal(download(gpu, v_cache, (H, Tmax, D)), v_ref)


def test_attention_decode_long_cache_spans_several_key_tiles(gpu):
    """pos past 64 (the decode kernel's key tile) with a prefilled cache; D = 64, H = 2."""
    C, H, Tmax, pos = 128, 2, 150, 149
    D = C // H
    qkv, _ = _world(1, Tmax, C, seed=12)
    ref_y, _ = attention_forward(qkv.astype(np.float64), H)
    k_all = qkv[0, :, C : 2 * C].reshape(Tmax, H, D).transpose(1, 0, 2).copy()
    v_all = qkv[0, :, 2 * C :].reshape(Tmax, H, D).transpose(1, 0, 2).copy()
    k_all[:, pos:] = v_all[:, pos:] = 1e3  # slot pos must be written by the kernel, later ones ignored
    k_cache, v_cache, y_row = upload(gpu, k_all), upload(gpu, v_all), empty(gpu, (C,))
    gpu.dispatch("attention_decode", [upload(gpu, qkv[0, pos]), k_cache, v_cache, y_row],
                 {"C": C, "H": H, "Tmax": Tmax, "pos": pos}, overrides={"D": D, "BQ": tile_rows(D)})
    assert_close(download(gpu, y_row, (C,)), ref_y[0, pos], FWD_ATOL, FWD_RTOL, "y_row")
    for p in (80, 3):  # an earlier position attends over a prefix only, ignoring later slots
        gpu.dispatch("attention_decode", [upload(gpu, qkv[0, p]), k_cache, v_cache, y_row],
                     {"C": C, "H": H, "Tmax": Tmax, "pos": p}, overrides={"D": D, "BQ": tile_rows(D)})
        assert_close(download(gpu, y_row, (C,)), ref_y[0, p], FWD_ATOL, FWD_RTOL, f"y_row at pos {p}")


def test_attention_scores_use_scale_one_over_sqrt_d(gpu):
    """Two keys, q.k1 = sqrt(D)*ln(3) and q.k2 = 0: the weights must be 3/4 and 1/4 exactly."""
    B, T, C, H = 1, 2, 16, 1
    D = C // H
    qkv = np.zeros((B, T, 3 * C), np.float32)
    qkv[0, 1, 0] = 1.0                                   # q of row 1 = e0
    qkv[0, 0, C] = math.sqrt(D) * math.log(3.0)          # k of row 0 along e0
    qkv[0, 0, 2 * C + 1], qkv[0, 1, 2 * C + 2] = 1.0, 1.0  # v0 = e1, v1 = e2
    y, lse, _ = _run(gpu, qkv, np.zeros((B, T, C), np.float32), H)
    assert_close(y[0, 1, :3], np.array([0.0, 0.75, 0.25]), 1e-6, 1e-6, "weights")
    assert_close(lse[0, 0], np.array([0.0, math.log(4.0)]), 1e-6, 1e-6, "lse")
