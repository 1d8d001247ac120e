"""Milliseconds per training step (loss_and_grad + AdamW) of the numpy reference, next to PyTorch.

    python3 benchmarks/bench_reference.py [--presets nano tiny small] [--batch 8] [--steps 20]

Each preset runs at full context with B=8. When torch imports, the same model written with torch
ops (pyscript_app/reference/torch_model.py: eager, CPU, float32, same initial weights) is timed in
the same process, alternating with numpy step by step so that load from other processes hits both
alike; the figure is the median step time. Thread counts are whatever the environment gives
(numpy: its BLAS's default, all cores; torch: torch.get_num_threads()). On a busy machine a
multi-threaded BLAS can be many times slower for these small matrices; compare single-threaded with
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python3 benchmarks/bench_reference.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyscript_app.config import TrainConfig, preset  # noqa: E402
from pyscript_app.reference import model  # noqa: E402
from pyscript_app.reference.adamw import AdamW  # noqa: E402
from pyscript_app.reference.init import init_params  # noqa: E402
from pyscript_app.reference.torch_model import TorchGPT, torch_available  # noqa: E402


def blas_name() -> str:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: no dict mode
        return "unknown"


def bench_preset(name: str, batch: int, steps: int, use_torch: bool) -> dict:
    cfg = preset(name)
    tc = TrainConfig()
    hyper = dict(beta1=tc.beta1, beta2=tc.beta2, eps=tc.adam_eps, weight_decay=tc.weight_decay)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, cfg.vocab_size, size=(batch, cfg.block_size + 1))
    idx, targets = tokens[:, :-1], tokens[:, 1:]  # (B,T) each

    flat = init_params(cfg, seed=1)
    opt = AdamW(cfg)

    def numpy_step() -> float:
        loss, grad = model.loss_and_grad(cfg, flat, idx, targets)
        opt.step(flat, grad, tc.lr, max_norm=tc.grad_clip, **hyper)
        return loss

    torch_step = None
    if use_torch:
        tm = TorchGPT(cfg, init_params(cfg, seed=1))
        topt = tm.make_optimizer(tc.lr, **hyper)

        def torch_step_fn() -> float:
            return tm.train_step(topt, idx, targets, tc.lr, tc.grad_clip)

        torch_step = torch_step_fn

    first = {"numpy": numpy_step()}
    if torch_step:
        first["torch"] = torch_step()
    for _ in range(2):  # warm-up (allocator, BLAS threads)
        numpy_step()
        if torch_step:
            torch_step()
    times: dict[str, list[float]] = {"numpy": [], "torch": []}
    for _ in range(steps):
        for key, fn in (("numpy", numpy_step), ("torch", torch_step)):
            if fn is None:
                continue
            t0 = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - t0) * 1e3)
    row = {"preset": name, "params": cfg.param_count, "first_loss": first}
    row["numpy_ms"] = statistics.median(times["numpy"])
    if torch_step:
        row["torch_ms"] = statistics.median(times["torch"])
        row["ratio"] = row["numpy_ms"] / row["torch_ms"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["nano", "tiny", "small"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per preset and framework")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()

    use_torch = torch_available() and not args.no_torch
    blas_threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"numpy {np.__version__} (BLAS: {blas_name()}, OPENBLAS_NUM_THREADS={blas_threads})")
    if use_torch:
        import torch

        print(f"torch {torch.__version__} (threads: {torch.get_num_threads()})")
    else:
        print("torch not available: numpy only")
    header = f"{'preset':8} {'params':>9} {'numpy ms':>9} {'torch ms':>9} {'np/torch':>9}"
    print(header + "  first loss np / torch")
    for name in args.presets:
        r = bench_preset(name, args.batch, args.steps, use_torch)
        torch_ms = f"{r['torch_ms']:9.2f}" if "torch_ms" in r else f"{'-':>9}"
        ratio = f"{r['ratio']:9.2f}" if "ratio" in r else f"{'-':>9}"
        losses = " / ".join(f"{v:.4f}" for v in r["first_loss"].values())
        print(f"{name:8} {r['params']:9d} {r['numpy_ms']:9.2f} {torch_ms} {ratio}  {losses}")


if __name__ == "__main__":
    main()
