"""gpu/model_ops.py: the recorded forward, loss and backward of the whole model against
reference/model.py (logits, per-token losses and every parameter's gradient).

Tolerances: logits and losses atol 1e-5 + rtol 1e-4; gradients atol 1e-6 + rtol 1e-3 relative to
each tensor's largest entry (f32 sums in a different order through a dozen ops)."""

import numpy as np
import pytest

from _gpu import assert_close, download, gpu  # noqa: F401
from pyscript_app.config import ModelConfig
from pyscript_app.gpu.attention_ops import AttentionOps
from pyscript_app.gpu.layout import PaddedLayout
from pyscript_app.gpu.model_ops import ModelOps
from pyscript_app.reference import model

pytestmark = pytest.mark.gpu


NARROW = ModelConfig(n_layer=2, n_embd=16, n_head=2, block_size=12, vocab_size=70)  # D = 8: attention.wgsl
WIDE = ModelConfig(n_layer=1, n_embd=64, n_head=2, block_size=40, vocab_size=70)  # D = 32: attention_rows*.wgsl


@pytest.mark.parametrize("cfg,B,T", [(NARROW, 2, 7), (NARROW, 1, 12), (WIDE, 2, 37)],
                         ids=["narrow-2x7", "narrow-1x12", "wide-2x37"])  # T < context, T not a tile multiple
def test_forward_backward_match_reference(gpu, cfg, B, T):
    _check_forward_backward(gpu, cfg, B, T)


# Split backward products (GPU adapters only, matmul_rules.matmul_dw_split / matmul_dx_split) forced here on
# whatever adapter runs the tests: several parts per weight, different counts per weight (the parts
# buffer's unused blocks), lm_head split or not (the parts' range then starts at a block weight), dx
# split where a norm consumes it (with and without a dw split of the same product).
SPLITS = {"all-3": (lambda N, K, M, info: 3, lambda N, K, M, info: 2),
          "mixed": (lambda N, K, M, info: {3 * K: 2, 4 * K: 4}.get(M, 1), lambda N, K, M, info: 3 if M == 3 * K else 1),
          "dx-only": (lambda N, K, M, info: 1, lambda N, K, M, info: 4)}


@pytest.mark.parametrize("policy", sorted(SPLITS))
@pytest.mark.parametrize("cfg,B,T", [(NARROW, 2, 7), (WIDE, 2, 37)], ids=["narrow-2x7", "wide-2x37"])
def test_forward_backward_with_split_dw_match_reference(gpu, monkeypatch, cfg, B, T, policy):
    from pyscript_app.gpu import model_ops

    monkeypatch.setattr(model_ops, "matmul_dw_split", SPLITS[policy][0])
    monkeypatch.setattr(model_ops, "matmul_dx_split", SPLITS[policy][1])
    ops = _check_forward_backward(gpu, cfg, B, T)
    assert (ops.parts is not None) == (policy != "dx-only")
    assert ops.dx_split["h0.proj"] == ops.dx_split["h0.fc_proj"] == 1  # dx feeding attention / relu-masked
    if policy == "mixed":
        assert ops.split["lm_head"] == 1 and ops.split["h0.qkv"] == 2 and ops.split["h0.fc"] == 4
        assert ops.dx_split["h0.qkv"] == 3 and ops.dx_split["h0.fc"] == 1 and ops.dx_split["lm_head"] == 1


@pytest.mark.parametrize("cfg,B,T", [(NARROW, 2, 8), (WIDE, 2, 36)], ids=["narrow-2x8", "wide-2x36"])
def test_forward_backward_with_materialized_attention_match_reference(gpu, monkeypatch, cfg, B, T):
    """The fp32 step with its attention as f32 products over materialised scores
    (gpu/materialized_attention.py, shaders/matmul_heads.wgsl), T a multiple of 4."""
    from pyscript_app.gpu import materialized_attention

    monkeypatch.setattr(materialized_attention, "ENABLED", {"coop": False, "f32": True})
    monkeypatch.setattr(materialized_attention, "is_gpu_adapter", lambda info: True)  # lavapipe is a CPU adapter
    monkeypatch.setattr(materialized_attention, "MIN_CONTEXT", 4)
    ops = _check_forward_backward(gpu, cfg, B, T)
    assert isinstance(ops.attn, materialized_attention.MaterializedAttentionOps) and ops.attn.products == "f32"


def test_gpu_adapter_choices_match_reference(gpu, monkeypatch):
    """On a GPU adapter (adapter_type reported natively) the registry's own split rule and
    rmsnorm_backward's GPU workgroup size apply; forced here on whatever adapter runs the tests."""
    monkeypatch.setitem(gpu.adapter_info, "adapter_type", "DiscreteGPU")
    sliced, four = set(), set()  # the kernels dispatched with sliced K, with 4 x 4 outputs per invocation
    dispatch = gpu.dispatch

    def recording(kernel, buffers, params, **kw):
        if (kw.get("overrides") or {}).get("KGROUPS", 1) > 1:
            sliced.add(kernel)
        if (kw.get("overrides") or {}).get("RPI", 8) == 4:
            four.add(kernel)
        return dispatch(kernel, buffers, params, **kw)

    monkeypatch.setattr(gpu, "dispatch", recording)
    ops = _check_forward_backward(gpu, WIDE, 32, 20)  # N = 640: dw sums of 640 positions in 2 parts
    assert set(ops.split.values()) == {2}  # every M <= 320 = N / 2
    assert ops.norm_backward_overrides == {"WG": 256, "DG_COLS": 2}
    # every product has few 64 x 64 tiles here (10 x 1 .. 10 x 16): the forward's take 32 x 32 tiles with
    # 4 x 4 outputs per invocation (matmul_rules.matmul_small_outputs), plus sliced K in the residual ones
    # (matmul_rules.matmul_forward_kgroups); the backward's keep 64 x 64 at RPI 4
    # (matmul_rules.matmul_backward_small_outputs). (lm_head's vocabulary of 70 is no multiple of 4: the
    # scalar entries)
    assert four == {"matmul_forward_rmsnorm_v4", "matmul_forward_rmsnorm_relu_v4", "matmul_forward_residual_v4",
                    "matmul_forward_rmsnorm", "matmul_backward_split_v4", "matmul_backward_relu_split_v4",
                    "matmul_backward_split"}, four
    assert sliced == {"matmul_forward_residual_v4"}, sliced


@pytest.mark.parametrize("adapter_type", ["CPU", "DiscreteGPU"])
def test_no_buffer_is_assumed_zero(gpu, monkeypatch, adapter_type):
    """alloc's contents are undefined (a pooled buffer keeps what its last user left): every storage
    buffer ModelOps allocates is handed over full of NaN here, and the results still match. On a GPU
    adapter this covers the dw parts buffer, whose unowned elements add_parts adds (a gain between two
    split weights once got a pooled buffer's leftovers)."""
    monkeypatch.setitem(gpu.adapter_info, "adapter_type", adapter_type)
    alloc = gpu.alloc

    def dirty(nbytes, usage="storage", label=""):
        buf = alloc(nbytes, usage, label)
        if usage == "storage":
            gpu.write(buf, b"\xff\xff\xff\x7f" * (buf.nbytes // 4))  # NaN
        return buf

    monkeypatch.setattr(gpu, "alloc", dirty)
    ops = _check_forward_backward(gpu, WIDE, 32, 20)
    assert (ops.parts is not None) == (adapter_type == "DiscreteGPU")


def test_gpu_big_tile_choices_match_reference(gpu, monkeypatch):
    """The big-tile rules on a GPU adapter, forced down to this test's small shapes: 128 x 128 tiles for
    every product, which the forward turns into 64 x 128 (matmul_rules.matmul_forward_overrides)."""
    from pyscript_app.gpu import matmul_rules

    monkeypatch.setitem(gpu.adapter_info, "adapter_type", "DiscreteGPU")
    monkeypatch.setattr(matmul_rules, "MATMUL_BIG_TILE_WORKGROUPS", 1)
    tiles = set()
    dispatch = gpu.dispatch

    def recording(kernel, buffers, params, **kw):
        if kernel.startswith("matmul_forward"):
            o = kw.get("overrides") or {}
            tiles.add((o.get("TM"), o.get("TN")))
        return dispatch(kernel, buffers, params, **kw)

    monkeypatch.setattr(gpu, "dispatch", recording)
    _check_forward_backward(gpu, WIDE, 32, 20)
    assert tiles == {(64, 128)}, tiles


def test_a_gpu_that_grants_only_16_kib_of_workgroup_memory_gets_tiles_that_fit(gpu, monkeypatch):
    """A browser's GPU adapter may grant only WebGPU's default 16 KiB of workgroup memory: the big-tile
    rule (forced down to these shapes) must then fall back to tiles that fit (matmul_rules.matmul_fit),
    and the results still match."""
    from pyscript_app.gpu import matmul_rules

    monkeypatch.setitem(gpu.adapter_info, "adapter_type", "IntegratedGPU")
    monkeypatch.setattr(gpu, "max_workgroup_bytes", 16384)
    monkeypatch.setattr(matmul_rules, "MATMUL_BIG_TILE_WORKGROUPS", 1)
    used = []
    dispatch = gpu.dispatch

    def recording(kernel, buffers, params, **kw):
        if kernel.startswith("matmul_"):
            o = kw.get("overrides") or {}
            used.append((o.get("TM", 64), o.get("TN", 64), o.get("KGROUPS", 1), o.get("RPI", 8)))
        return dispatch(kernel, buffers, params, **kw)

    monkeypatch.setattr(gpu, "dispatch", recording)
    _check_forward_backward(gpu, WIDE, 32, 20)
    assert used and all(matmul_rules.matmul_workgroup_bytes(*u) <= 16384 for u in used), used
    assert (128, 128, 1, 8) not in used


def _check_forward_backward(gpu, cfg, B, T):
    rng = np.random.default_rng(B * 100 + T)
    flat = (rng.standard_normal(cfg.param_count) * 0.3).astype(np.float32)  # no zero-init branches
    idx = rng.integers(0, cfg.vocab_size, size=(B, T))
    idx[0, :3] = 5  # a repeated token: the embedding scatter-add must sum its rows
    targets = rng.integers(0, cfg.vocab_size, size=(B, T))
    lay = PaddedLayout(cfg)
    ops = ModelOps(gpu, lay, B, T, AttentionOps(gpu, B, T, cfg.n_embd, cfg.n_head, cfg.block_size))
    params = gpu.upload(lay.to_padded(flat.tobytes()))
    grads = gpu.upload(b"\0" * lay.padded_nbytes)
    ops.write_tokens(idx.astype(np.uint32).tobytes(), targets.astype(np.uint32).tobytes())
    ops.forward(params)
    ops.loss_and_dlogits()
    ops.backward(params, grads)

    loss, cache = model.forward(cfg, flat, idx, targets)
    ref_grad = model.backward(cfg, flat, cache)
    N, V = B * T, cfg.vocab_size
    assert_close(download(gpu, ops.logits, (B, T, V)), cache.logits, 1e-5, 1e-4, "logits")
    assert_close(download(gpu, ops.losses, (N,)), cache.losses, 1e-5, 1e-4, "losses")
    got = np.frombuffer(lay.to_flat(download(gpu, grads, (lay.padded_count,)).tobytes()), np.float32)
    for name, (off, shape) in cfg.param_offsets().items():
        n = int(np.prod(shape))
        ref = ref_grad[off : off + n]
        assert_close(got[off : off + n], ref, 1e-6 + 1e-3 * np.abs(ref).max(), 0, f"grad {name}")
    padding = download(gpu, grads, (lay.padded_count,))
    for s in lay.slots.values():
        padding[s.offset : s.offset + s.numel] = 0
    assert (padding == 0).all(), "the gaps between tensors must stay zero"
    return ops


def test_training_forward_backward_with_dropout_match_reference(gpu):
    """dropout 0.3 at step 4: the GPU recomputes the reference's masks (forward and backward);
    a forward without train=True (evaluation) does not drop."""
    from pyscript_app.reference.dropout import Dropout

    cfg = ModelConfig(n_layer=2, n_embd=16, n_head=2, block_size=12, vocab_size=70)
    B, T, p, seed, step = 2, 9, 0.3, 21, 4
    rng = np.random.default_rng(5)
    flat = (rng.standard_normal(cfg.param_count) * 0.3).astype(np.float32)
    idx, targets = rng.integers(0, cfg.vocab_size, size=(2, B, T))
    lay = PaddedLayout(cfg)
    ops = ModelOps(gpu, lay, B, T, AttentionOps(gpu, B, T, cfg.n_embd, cfg.n_head, cfg.block_size), dropout=p)
    params = gpu.upload(lay.to_padded(flat.tobytes()))
    grads = gpu.upload(b"\0" * lay.padded_nbytes)
    ops.write_tokens(idx.astype(np.uint32).tobytes(), targets.astype(np.uint32).tobytes())
    ops.write_dropout_keys(seed, step)
    ops.forward(params, train=True)
    ops.loss_and_dlogits()
    ops.backward(params, grads)

    loss, cache = model.forward(cfg, flat, idx, targets, Dropout(p, seed, step))
    ref_grad = model.backward(cfg, flat, cache)
    N = B * T
    assert_close(download(gpu, ops.losses, (N,)), cache.losses, 1e-5, 1e-4, "losses with dropout")
    got = np.frombuffer(lay.to_flat(download(gpu, grads, (lay.padded_count,)).tobytes()), np.float32)
    for name, (off, shape) in cfg.param_offsets().items():
        n = int(np.prod(shape))
        ref = ref_grad[off : off + n]
        assert_close(got[off : off + n], ref, 1e-6 + 1e-3 * np.abs(ref).max(), 0, f"grad {name}")

    ops.forward(params)  # evaluation: no dropout
    ops.loss_only()
    _, eval_cache = model.forward(cfg, flat, idx, targets)
    assert_close(download(gpu, ops.losses, (N,)), eval_cache.losses, 1e-5, 1e-4, "losses without dropout")
    assert not np.allclose(eval_cache.losses, cache.losses, rtol=1e-3), "the masks must matter"
