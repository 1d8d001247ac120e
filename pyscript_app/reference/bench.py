"""Benchmarks of the numpy reference (native): correctness gate, then training-step timings beside PyTorch.

A training step = loss_and_grad + clip + AdamW at batch B and the preset's full context. PyTorch runs
the same model (reference/torch_model.py, float32, eager, CPU) on the same weights and batches in
the same process, so the ratio numpy/torch compares the two on this machine at this moment.

Both run on ONE thread (threadpoolctl for numpy's BLAS, torch.set_num_threads(1)): at these sizes
threads cost more than they gain, and on a busy 2-core machine two BLAS pools oversubscribe the
cores (measured here: nano 32 ms/step with default threads vs 2.6 ms with one).
"""

from __future__ import annotations

import time

import numpy as np

from ..config import ModelConfig, TrainConfig, preset
from . import adamw, model
from .gradcheck import numeric_grad, relative_error
from .init import init_params


def _batch(cfg: ModelConfig, B: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    idx = r.integers(0, cfg.vocab_size, size=(B, cfg.block_size + 1))
    return idx[:, :-1], idx[:, 1:]


def gate() -> list[dict]:
    """Correctness checks that must pass before any timing: gradient vs finite differences (float64)
    on a small model, and numpy vs PyTorch loss and gradient on `nano` when torch is installed."""
    results = []
    cfg = ModelConfig(n_layer=2, n_embd=8, n_head=2, block_size=6, vocab_size=11)
    r = np.random.default_rng(0)
    flat = r.normal(0, 0.3, cfg.param_count)  # float64, every path non-zero
    idx, tgt = r.integers(0, 11, (2, 6)), r.integers(0, 11, (2, 6))
    _, grad = model.loss_and_grad(cfg, flat, idx, tgt)
    sel = r.choice(cfg.param_count, 40, replace=False)
    probe = flat.copy()

    def f():
        return model.forward(cfg, probe, idx, tgt)[0]

    num = np.array([_fd_one(f, probe, i) for i in sel])
    err = relative_error(grad[sel], num)
    results.append({"name": "model gradient vs finite differences (f64)", "error": err, "passed": err < 1e-6})
    try:
        from .torch_model import TorchGPT
    except ImportError:  # pragma: no cover
        return results
    try:
        import torch  # noqa: F401
    except ImportError:
        return results
    cfg = preset("nano")
    flat = init_params(cfg, 1)
    flat += np.random.default_rng(1).normal(0, 0.02, flat.size).astype(np.float32)  # non-zero projections
    idx, tgt = _batch(cfg, 4, 0)
    loss, grad = model.loss_and_grad(cfg, flat, idx, tgt)
    tl, tg = TorchGPT(cfg, flat).loss_and_grad(idx, tgt)
    err = max(abs(loss - tl) / abs(tl), relative_error(grad, tg))
    results.append({"name": "numpy vs PyTorch loss and gradient (nano, f32)", "error": err, "passed": err < 1e-4})
    return results


def _fd_one(f, x: np.ndarray, i: int, h: float = 1e-6) -> float:
    saved = x[i]
    x[i] = saved + h
    fp = f()
    x[i] = saved - h
    fm = f()
    x[i] = saved
    return (fp - fm) / (2 * h)


def time_numpy_step(name: str, B: int, repeats: int) -> float:
    """Median seconds per training step of the numpy reference (one BLAS thread)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _time_numpy_step(name, B, repeats)


def _time_numpy_step(name: str, B: int, repeats: int) -> float:
    cfg, tc = preset(name), TrainConfig()
    flat = init_params(cfg, 1)
    opt = adamw.AdamW(cfg)
    idx, tgt = _batch(cfg, B, 0)
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        _, g = model.loss_and_grad(cfg, flat, idx, tgt)
        opt.step(flat, g, 1e-3, beta1=tc.beta1, beta2=tc.beta2, eps=tc.adam_eps,
                 weight_decay=tc.weight_decay, max_norm=tc.grad_clip)
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))


def time_torch_step(name: str, B: int, repeats: int) -> float | None:
    """Median seconds per training step of the same model in PyTorch eager (None without torch)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    import torch

    from .torch_model import TorchGPT

    torch.set_num_threads(1)
    cfg, tc = preset(name), TrainConfig()
    m = TorchGPT(cfg, init_params(cfg, 1))
    opt = m.make_optimizer(1e-3, beta1=tc.beta1, beta2=tc.beta2, eps=tc.adam_eps, weight_decay=tc.weight_decay)
    idx, tgt = _batch(cfg, B, 0)
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        m.train_step(opt, idx, tgt, 1e-3, tc.grad_clip)
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))
