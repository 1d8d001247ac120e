"""The mixed-precision step against numpy: one forward, loss and backward of a small model with
precision "mixed" (gpu/model_ops.py on shaders/matmul_coop.wgsl) beside reference/mixed.py (the same
f16 rounding of every product's operands, in numpy) and beside the f32 reference.

Why not a fixed tolerance: rounding to f16 makes the step's gradients sensitive to the last bits of
its f32 inputs. A value that the GPU and numpy compute in another order may round to the other f16
neighbour, and the backward (the norms' and the softmax's projections, relu's mask) carries such
steps far: two numpy runs of the mixed step whose parameters differ by one part in 10^7 differ by
~1-3 % (L2, per gradient tensor) on this model, and the f32 step is as far (f16's own rounding; bf16
under PyTorch's autocast is 8x coarser). So the gate measures that sensitivity first (the mixed
reference at the parameters and at two such perturbations of them) and asks the GPU to be within
NOISE_FACTOR times it, per tensor, in L2: a wrong layout, epilogue or scale moves a tensor by O(1),
tens of times more. The forward's logits and losses are far less sensitive (~4e-4), so this holds them
tightly too. `tabgpt bench --precision mixed` runs it as its gate (check_mixed_steps: CHECK_MODEL, and
CHECK_LONG_MODEL, whose context reaches materialized_attention.MIN_CONTEXT so that the step's attention
runs on the matrix units too). Native only (numpy)."""

from __future__ import annotations

import numpy as np

from ..config import ModelConfig
from ..reference import model
from ..reference.init import init_params
from ..reference.mixed import mixed_products
from .attention_ops import AttentionOps
from .layout import PaddedLayout
from .model_ops import ModelOps

NOISE_FACTOR = 4.0  # the GPU's L2 distance to the mixed reference, at most this times numpy's own sensitivity
NOISE_FLOOR = 1e-5  # ... plus this (tensors the perturbation does not move)
PERTURBATION = 1e-7  # relative, on every parameter: about f32's last bit
CHECK_MODEL = ModelConfig(n_layer=2, n_embd=64, n_head=2, block_size=64, vocab_size=256)
CHECK_BATCH = 4
# context 256 reaches materialized_attention.MIN_CONTEXT, so its attention runs on the matrix units
# (test_gpu_materialized_attention holds it)
CHECK_LONG_MODEL = ModelConfig(n_layer=1, n_embd=64, n_head=2, block_size=256, vocab_size=256)
CHECK_LONG_BATCH = 2


def _read(ex, buf, n: int) -> np.ndarray:
    from .executor import run_sync

    return np.frombuffer(run_sync(ex.read(buf, n * 4)), np.float32).copy()


def gpu_step(ex, cfg: ModelConfig, B: int, seed: int = 0, precision: str = "mixed", rng=None) -> tuple:
    """One forward, loss and backward on the GPU at seeded parameters (init_params plus noise from rng,
    default_rng(seed) unless given, so no branch starts at zero) and tokens: ({"logits", "losses", each
    gradient: values}, flat params, idx, targets, ops)."""
    T = cfg.block_size
    rng = np.random.default_rng(seed) if rng is None else rng
    flat = init_params(cfg, seed + 1).astype(np.float32)
    flat += (0.02 * rng.standard_normal(flat.size)).astype(np.float32)  # no zero-initialised branch
    idx, targets = rng.integers(0, cfg.vocab_size, size=(2, B, T))
    lay = PaddedLayout(cfg)
    ops = ModelOps(ex, lay, B, T, AttentionOps(ex, B, T, cfg.n_embd, cfg.n_head, cfg.block_size), precision=precision)
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
    return got, flat, idx, targets, ops


def reference_tensors(cfg: ModelConfig, p: np.ndarray, idx: np.ndarray, targets: np.ndarray) -> dict:
    """gpu_step's tensors from the numpy reference model (whichever products are swapped in)."""
    _, cache = model.forward(cfg, p, idx, targets)
    ref_grad = model.backward(cfg, p, cache)
    out = {"logits": cache.logits.reshape(-1), "losses": cache.losses.reshape(-1)}
    out.update({name: ref_grad[off:off + int(np.prod(shape))] for name, (off, shape) in cfg.param_offsets().items()})
    return out


def check_mixed_step(ex, cfg: ModelConfig = CHECK_MODEL, B: int = CHECK_BATCH, seed: int = 0) -> dict:
    """{"passed", "worst_ratio", "tensors": {name: {"err", "noise", "f32_err"}}}: per tensor (logits, losses,
    each gradient) the GPU's relative L2 distance to the mixed reference, numpy's own sensitivity (the
    larger of two perturbed runs' distances) and the GPU's distance to the f32 reference."""
    rng = np.random.default_rng(seed)  # the inputs', then the perturbations'
    got, flat, idx, targets, ops = gpu_step(ex, cfg, B, seed, rng=rng)

    def reference(p: np.ndarray) -> dict:
        return reference_tensors(cfg, p, idx, targets)

    def dist(a: dict, b: dict) -> dict:
        return {k: float(np.linalg.norm(a[k] - b[k]) / max(np.linalg.norm(b[k]), 1e-30)) for k in b}

    f32 = dist(got, reference(flat))
    with mixed_products(ops.grad_scale, attention=ops.coop_attention):
        mixed = reference(flat)
        shaken = [reference((flat * (1 + PERTURBATION * rng.standard_normal(flat.size))).astype(np.float32))
                  for _ in range(2)]
    err = dist(got, mixed)
    noise = {k: max(dist(s, mixed)[k] for s in shaken) for k in mixed}
    tensors = {k: {"err": err[k], "noise": noise[k], "f32_err": f32[k]} for k in mixed}
    worst = max(err[k] / (NOISE_FACTOR * noise[k] + NOISE_FLOOR) for k in mixed)
    return {"passed": worst <= 1.0, "worst_ratio": worst, "tensors": tensors,
            "mixed_err": max(err.values()), "f32_err": max(f32.values()), "model": cfg.to_dict(), "batch": B,
            "attention": "matrix units" if ops.coop_attention else "blocks kernels (f32)"}


def check_mixed_steps(ex) -> dict:
    """check_mixed_step on CHECK_MODEL and on CHECK_LONG_MODEL: the same keys, each over both models
    (passed by both, the worst ratio and errors of either), and "models": each model's own result."""
    runs = [check_mixed_step(ex), check_mixed_step(ex, CHECK_LONG_MODEL, CHECK_LONG_BATCH)]
    return {"passed": all(r["passed"] for r in runs), "worst_ratio": max(r["worst_ratio"] for r in runs),
            "mixed_err": max(r["mixed_err"] for r in runs), "f32_err": max(r["f32_err"] for r in runs),
            "attention": [r["attention"] for r in runs], "models": runs}
