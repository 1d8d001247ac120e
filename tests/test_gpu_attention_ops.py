"""gpu/attention_ops.py: the AttentionOps recorder against the numpy reference, causality, KV-cache
decoding against the full forward, and replays that create no GPU object.

Tolerances as in test_kernels_attention.py: y atol 1e-5 + rtol 1e-4; dqkv atol 2e-5 + rtol 2e-4;
decode rows vs forward rows atol 1e-5 + rtol 1e-4."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.gpu.attention_ops import AttentionOps, tile_rows
from pyscript_app.reference.ops_attention import attention_backward, attention_forward

pytestmark = pytest.mark.gpu
FWD_ATOL, FWD_RTOL = 1e-5, 1e-4
BWD_ATOL, BWD_RTOL = 2e-5, 2e-4
CREATED = ("buffers", "shader_modules", "pipelines", "bind_groups", "uniform_buffers")


def _qkv(B, T, C, seed):
    return (np.random.default_rng(seed).standard_normal((B, T, 3 * C)) * 1.5).astype(np.float32)


def _created(ex):
    return {k: ex.stats[k] for k in CREATED}


def test_tile_rows_fit_the_shader_tile():
    assert [tile_rows(D) for D in (4, 16, 32, 64, 12, 36)] == [16, 16, 16, 8, 16, 14]
    assert all(tile_rows(D) * D // 4 <= 128 for D in range(4, 65, 4))


@pytest.mark.parametrize("B,T,C,H", [(2, 32, 64, 4), (1, 13, 64, 4)])
def test_forward_backward_match_reference(gpu, B, T, C, H):
    qkv = _qkv(B, T, C, seed=T + C)
    dy = np.random.default_rng(T).standard_normal((B, T, C)).astype(np.float32)
    ops = AttentionOps(gpu, B, T, C, H, Tmax=T + 3)
    bqkv, bdy = upload(gpu, qkv), upload(gpu, dy)
    y, lse, dqkv = empty(gpu, (B, T, C)), empty(gpu, (B, H, T)), empty(gpu, qkv.shape)  # NaN-filled
    ops.forward(bqkv, y, lse)
    ops.backward(bdy, bqkv, y, lse, dqkv)
    ref_y, ref_lse = attention_forward(qkv.astype(np.float64), H)
    ref_dqkv = attention_backward(dy.astype(np.float64), qkv.astype(np.float64), ref_y, ref_lse, H)
    assert_close(download(gpu, y, (B, T, C)), ref_y, FWD_ATOL, FWD_RTOL, "y")
    assert_close(download(gpu, lse, (B, H, T)), ref_lse, FWD_ATOL, FWD_RTOL, "lse")
    assert_close(download(gpu, dqkv, qkv.shape), ref_dqkv, BWD_ATOL, BWD_RTOL, "dqkv")


def test_buffer_views_at_aligned_offsets(gpu):
    """The trainer may bind 256-aligned views of larger buffers; results must not shift."""
    B, T, C, H = 1, 5, 16, 4
    qkv = _qkv(B, T, C, seed=3)
    pad = np.full(64, 7.0, np.float32)  # 256 bytes of junk before the tensor
    big = upload(gpu, np.concatenate([pad, qkv.ravel(), pad]))
    out = empty(gpu, (64 + B * T * C + 64,))
    lse = empty(gpu, (B, H, T))
    AttentionOps(gpu, B, T, C, H, Tmax=T).forward(big.view(256, qkv.nbytes), out.view(256, B * T * C * 4), lse)
    got = download(gpu, out, (64 + B * T * C + 64,))
    assert np.isnan(got[:64]).all() and np.isnan(got[64 + B * T * C :]).all()
    assert_close(got[64 : 64 + B * T * C].reshape(B, T, C), attention_forward(qkv.astype(np.float64), H)[0],
                 FWD_ATOL, FWD_RTOL, "y")


def test_future_tokens_do_not_change_earlier_outputs(gpu):
    B, T, C, H, cut = 2, 33, 64, 2, 19
    qkv = _qkv(B, T, C, seed=4)
    changed = qkv.copy()
    changed[:, cut + 1 :] = _qkv(B, T - cut - 1, C, seed=5)
    ops = AttentionOps(gpu, B, T, C, H, Tmax=T)
    outs = []
    for x in (qkv, changed):
        y, lse = empty(gpu, (B, T, C)), empty(gpu, (B, H, T))
        ops.forward(upload(gpu, x), y, lse)
        outs.append((download(gpu, y, (B, T, C)), download(gpu, lse, (B, H, T))))
    (y0, lse0), (y1, lse1) = outs
    assert np.array_equal(y0[:, : cut + 1], y1[:, : cut + 1])  # masked keys contribute exactly 0
    assert np.array_equal(lse0[..., : cut + 1], lse1[..., : cut + 1])
    assert not np.allclose(y0[:, cut + 1 :], y1[:, cut + 1 :])  # the change is visible after the cut


def test_decode_token_by_token_equals_forward(gpu):
    """Two layers' caches decoded at the same pos in one submission, pos = 0 .. Tmax-1."""
    C, H, Tmax = 64, 4, 32
    D = C // H
    seqs = [_qkv(1, Tmax, C, seed=10 + layer) for layer in range(2)]
    ops = AttentionOps(gpu, 1, Tmax, C, H, Tmax)
    caches = [(empty(gpu, (H, Tmax, D)), empty(gpu, (H, Tmax, D))) for _ in seqs]
    rows = [gpu.alloc(3 * C * 4) for _ in seqs]
    ys = [gpu.alloc(C * 4) for _ in seqs]
    got = np.zeros((2, Tmax, C), np.float32)
    for pos in range(Tmax):
        for layer, seq in enumerate(seqs):
            gpu.write(rows[layer], seq[0, pos].tobytes())
            ops.decode(rows[layer], *caches[layer], ys[layer], pos)
        for layer in range(2):
            got[layer, pos] = download(gpu, ys[layer], (C,))
    for layer, seq in enumerate(seqs):
        y_full = empty(gpu, (1, Tmax, C))
        ops.forward(upload(gpu, seq), y_full, empty(gpu, (1, H, Tmax)))
        # vs the GPU forward on the whole sequence (the brief's 1e-5) and vs the float64 reference
        assert_close(got[layer], download(gpu, y_full, (1, Tmax, C))[0], 1e-5, 0, f"layer {layer} vs forward")
        assert_close(got[layer], attention_forward(seq.astype(np.float64), H)[0][0], FWD_ATOL, FWD_RTOL,
                     f"layer {layer} vs reference")


def test_decode_positions_recorded_without_reading_in_between(gpu):
    """decode() submits before changing pos, so several positions may be recorded back to back."""
    C, H, Tmax = 16, 4, 6
    seq = _qkv(1, Tmax, C, seed=20)
    ops = AttentionOps(gpu, 1, Tmax, C, H, Tmax)
    k_cache, v_cache = empty(gpu, (H, Tmax, C // H)), empty(gpu, (H, Tmax, C // H))
    ys = [empty(gpu, (C,)) for _ in range(Tmax)]
    for pos in range(Tmax):
        ops.decode(upload(gpu, seq[0, pos]), k_cache, v_cache, ys[pos], pos)
    ref = attention_forward(seq.astype(np.float64), H)[0][0]
    for pos in range(Tmax):
        assert_close(download(gpu, ys[pos], (C,)), ref[pos], FWD_ATOL, FWD_RTOL, f"pos {pos}")


def test_replaying_records_no_new_gpu_objects(gpu):
    B, T, C, H = 2, 5, 16, 4
    ops = AttentionOps(gpu, B, T, C, H, Tmax=8)
    qkv, dy = upload(gpu, _qkv(B, T, C, seed=30)), upload(gpu, np.ones((B, T, C), np.float32))
    y, lse, dqkv = empty(gpu, (B, T, C)), empty(gpu, (B, H, T)), empty(gpu, (B, T, 3 * C))
    row, k_cache, v_cache, y_row = empty(gpu, (3 * C,)), empty(gpu, (H, 8, 4)), empty(gpu, (H, 8, 4)), empty(gpu, (C,))

    def step(pos):
        ops.forward(qkv, y, lse)
        ops.backward(dy, qkv, y, lse, dqkv)
        ops.decode(row, k_cache, v_cache, y_row, pos)
        gpu.submit()

    step(0)
    before, dispatches = _created(gpu), gpu.stats["dispatches"]
    for pos in range(1, 8):
        step(pos)
    assert _created(gpu) == before
    assert gpu.stats["dispatches"] - dispatches == 7 * 3  # forward 1 + backward 1 + decode 1


@pytest.mark.parametrize("C,H,T,Tmax", [(18, 3, 4, 4), (8, 3, 4, 4), (136, 2, 4, 4), (16, 4, 5, 4), (16, 5, 1, 1)])
def test_rejects_unsupported_shapes(gpu, C, H, T, Tmax):
    with pytest.raises(ValueError):
        AttentionOps(gpu, 1, T, C, H, Tmax)


def test_decode_rejects_positions_outside_the_cache(gpu):
    ops = AttentionOps(gpu, 1, 4, 16, 4, Tmax=4)
    bufs = [empty(gpu, (48,)), empty(gpu, (4, 4, 4)), empty(gpu, (4, 4, 4)), empty(gpu, (16,))]
    for pos in (-1, 4):
        with pytest.raises(ValueError):
            ops.decode(*bufs, pos)
