"""Final val loss of the GPU backend against the numpy backend, and against numpy itself.

    python3 benchmarks/gpu_vs_numpy_val.py [--model tiny] [--steps 1000] [--perturbed 3] [--gpu wgpu-native]
                                          [--json FILE]

Why this exists: the kernels issue asks that `tabgpt train --backend gpu --dataset names --model tiny`
reach the numpy backend's val loss within 1e-3 relative at equal steps. Per step the two backends
agree to ~1e-7 (tests/test_gpu_parity_training.py) until the learning rate warms up; then training is
chaotic: rounding-level differences grow ~1.7x per step and by step ~80 the two runs hold different
weights (wte and wpe differ by ~50% relative) with similar losses. So the honest yardstick is the
spread of numpy against itself: numpy runs whose initial weights are multiplied by (1 + 1e-7 z),
z ~ N(0, 1) (one rounding step of float32), from the same seed, same batches, same schedule.

Runs, all with TrainConfig defaults for the given model and steps on names:
  numpy (unperturbed), numpy perturbed x N (rng seeds 1..N), gpu (the chosen engine).
Each final model is scored on the whole val split (every non-overlapping window of T+1 tokens:
an estimate with ~5x less sampling noise than the trainer's 64-window slice).
Prints one JSON object (and writes it to --json): every final val loss, the GPU's relative difference
from numpy, the numpy ensemble's min / max / standard deviation, and the GPU's z-score against it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyscript_app.config import TrainConfig  # noqa: E402
from pyscript_app.train.numpy_backend import NumpyBackend  # noqa: E402
from pyscript_app.data.prepare import load_prepared  # noqa: E402
from pyscript_app.train.trainer import Trainer, make_windows  # noqa: E402


def full_val(val, T: int):
    """Every non-overlapping window of T+1 tokens of val: inputs and targets, rows (n, T)."""
    starts = list(range(0, len(val) - T - 1, T))
    return make_windows(val, starts, T)


async def train_and_score(cfg: TrainConfig, backend, data, perturb_seed: int | None) -> float:
    tok, train, val = data
    await backend.init(cfg.seed)
    if perturb_seed is not None:  # one float32 rounding step of noise on every initial weight
        p = np.frombuffer((await backend.export())["params"], np.float32).copy()
        p *= (1 + 1e-7 * np.random.default_rng(perturb_seed).standard_normal(p.size)).astype(np.float32)
        await backend.load(p.tobytes(), None, None, 0)
    async for _ in Trainer(cfg, backend, train, val, tok).run(fresh=False):
        pass
    x, y = full_val(val, backend.model_cfg.block_size)
    return float(await backend.evaluate(x, y, cfg.batch))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--perturbed", type=int, default=3)
    ap.add_argument("--gpu", default="wgpu-native", choices=["auto", "dawn", "wgpu-native"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    cfg = TrainConfig(dataset="names", model=args.model, steps=args.steps, eval_every=10**9)
    data = load_prepared("names", None, cfg.vocab_size)
    mc = cfg.model_cfg()
    runs = {}
    t0 = time.perf_counter()
    runs["numpy"] = asyncio.run(train_and_score(cfg, NumpyBackend(mc, cfg), data, None))
    for s in range(1, args.perturbed + 1):
        runs[f"numpy_perturbed_{s}"] = asyncio.run(train_and_score(cfg, NumpyBackend(mc, cfg), data, s))
    from pyscript_app.gpu.native import open_device
    from pyscript_app.gpu.trainer_backend import GpuBackend

    ex = open_device(args.gpu)
    gcfg = replace(cfg, backend="gpu", gpu=args.gpu)
    runs["gpu"] = asyncio.run(train_and_score(gcfg, GpuBackend(mc, gcfg, ex), data, None))

    numpy_runs = [v for k, v in runs.items() if k.startswith("numpy")]
    ref = runs["numpy"]
    result = {
        "command": "python3 benchmarks/gpu_vs_numpy_val.py " + " ".join(sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {platform.node()}",
        "adapter": ex.adapter_info,
        "model": args.model,
        "steps": args.steps,
        "val_loss_full_split": runs,
        "gpu_rel_diff_vs_numpy": abs(runs["gpu"] - ref) / ref,
        "numpy_spread": {
            "min": min(numpy_runs),
            "max": max(numpy_runs),
            "stdev": statistics.stdev(numpy_runs) if len(numpy_runs) > 1 else 0.0,
            "max_rel_diff_vs_unperturbed": max(abs(v - ref) / ref for v in numpy_runs),
        },
        # how many numpy standard deviations the GPU's loss lies from the numpy runs' mean
        "gpu_z_score": (runs["gpu"] - statistics.mean(numpy_runs)) / statistics.stdev(numpy_runs)
        if len(numpy_runs) > 1 else None,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
