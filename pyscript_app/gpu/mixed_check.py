"""The mixed-precision step against numpy: one forward, loss and backward of a small model with
precision "mixed" (gpu/model_ops.py on shaders/matmul_coop.wgsl) beside reference/mixed.py (the same
f16 rounding of every product's operands, in numpy) and beside the f32 reference.

The GPU and numpy round the same f32 values to f16 except where their f32 inputs differ in the last
bits (sums in another order), which can move an operand by one f16 step (2^-11 relative) here and
there: so the mixed reference is matched to MIXED_RTOL of each tensor's largest entry, not bit for
bit. Against the f32 reference the error is f16's rounding itself, reported, and bounded by F32_RTOL.
`tabgpt bench --precision mixed` runs it as its gate before timing anything. Native only (numpy)."""

from __future__ import annotations

import numpy as np

from ..config import ModelConfig
from ..reference import model
from ..reference.mixed import mixed_products
from .attention_ops import AttentionOps
from .layout import PaddedLayout
from .model_ops import ModelOps

MIXED_RTOL = 5e-3  # of each tensor's largest entry: logits, losses and every gradient
F32_RTOL = 5e-2
CHECK_MODEL = ModelConfig(n_layer=2, n_embd=64, n_head=2, block_size=64, vocab_size=256)
CHECK_BATCH = 4


def _read(ex, buf, n: int) -> np.ndarray:
    from .executor import run_sync

    return np.frombuffer(run_sync(ex.read(buf, n * 4)), np.float32).copy()


def check_mixed_step(ex, cfg: ModelConfig = CHECK_MODEL, B: int = CHECK_BATCH, seed: int = 0) -> dict:
    """{"passed", "mixed_err", "f32_err"}: the worst error over logits, losses and gradients, each as a
    fraction of that tensor's largest entry, against the mixed and the f32 reference."""
    T = cfg.block_size
    rng = np.random.default_rng(seed)
    flat = (rng.standard_normal(cfg.param_count) * 0.3).astype(np.float32)
    idx, targets = rng.integers(0, cfg.vocab_size, size=(2, B, T))
    lay = PaddedLayout(cfg)
    ops = ModelOps(ex, lay, B, T, AttentionOps(ex, B, T, cfg.n_embd, cfg.n_head, cfg.block_size), precision="mixed")
    params = ex.upload(lay.to_padded(flat.tobytes()))
    grads = ex.upload(b"\0" * lay.padded_nbytes)
    ops.write_tokens(idx.astype(np.uint32).tobytes(), targets.astype(np.uint32).tobytes())
    ops.forward(params)
    ops.loss_and_dlogits()
    ops.backward(params, grads)
    N = B * T
    got = {"logits": _read(ex, ops.logits, N * cfg.vocab_size), "losses": _read(ex, ops.losses, N)}
    g = np.frombuffer(lay.to_flat(_read(ex, grads, lay.padded_count).tobytes()), np.float32)
    got.update({name: g[off:off + int(np.prod(shape))] for name, (off, shape) in cfg.param_offsets().items()})

    def reference() -> dict:
        _, cache = model.forward(cfg, flat, idx, targets)
        ref_grad = model.backward(cfg, flat, cache)
        out = {"logits": cache.logits.reshape(-1), "losses": cache.losses.reshape(-1)}
        out.update({name: ref_grad[off:off + int(np.prod(shape))] for name, (off, shape) in cfg.param_offsets().items()})
        return out

    f32_ref = reference()
    with mixed_products(ops.grad_scale):
        mixed_ref = reference()

    def worst(ref: dict) -> float:
        return max(float(np.abs(got[k] - ref[k]).max() / max(np.abs(ref[k]).max(), 1e-30)) for k in ref)

    mixed_err, f32_err = worst(mixed_ref), worst(f32_ref)
    return {"passed": mixed_err <= MIXED_RTOL and f32_err <= F32_RTOL, "mixed_err": mixed_err, "f32_err": f32_err,
            "model": cfg.to_dict(), "batch": B}
