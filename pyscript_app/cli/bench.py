"""`tabgpt bench`: the correctness gate first, then timings; numbers only for what passed."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from ..config import PRESETS
from ..errors import UserError


def _models(arg: str) -> list[str]:
    names = [m.strip() for m in arg.split(",") if m.strip()]
    bad = [m for m in names if m not in PRESETS]
    if bad or not names:
        raise UserError(f"unknown preset(s) {', '.join(bad) or '(none)'}; choose from {', '.join(PRESETS)}")
    return names


def _cpu_model() -> str | None:
    """The host CPU's model name (Linux), or None: PyTorch eager, the step's peer, is bound by the host's
    kernel launches at these sizes, so its times vary with the CPU that drives the GPU."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _versions() -> dict:
    import numpy

    v = {"python": platform.python_version(), "numpy": numpy.__version__, "machine": platform.machine(),
         "processor": _cpu_model() or platform.processor() or platform.machine()}
    try:
        import torch

        v["torch"] = torch.__version__
    except ImportError:
        v["torch"] = None
    return v


def bench_numpy(args) -> dict:
    from ..reference import bench as bn

    out = {"backend": "numpy", "gate": bn.gate(), "steps": []}
    passed = sum(r["passed"] for r in out["gate"])
    failed = len(out["gate"]) - passed
    for r in out["gate"]:
        print(f"{'PASS' if r['passed'] else 'FAIL'}  {r['name']}  (error {r['error']:.2e})")
    print(f"{passed} passed, {failed} failed")
    if failed:
        return out
    print(f"\n{'model':<8} {'numpy ms/step':>14} {'torch ms/step':>14} {'numpy/torch':>12}   (B=8, full context)")
    for name in _models(args.models):
        n = bn.time_numpy_step(name, 8, args.repeats)
        t = bn.time_torch_step(name, 8, args.repeats)
        row = {"model": name, "batch": 8, "numpy_ms": n * 1e3, "torch_ms": t * 1e3 if t else None,
               "ratio_numpy_over_torch": n / t if t else None}
        out["steps"].append(row)
        tt = f"{t * 1e3:14.2f} {n / t:12.2f}" if t else f"{'-':>14} {'-':>12}"
        print(f"{name:<8} {n * 1e3:14.2f} {tt}")
    return out


def bench_inference(args) -> dict:
    """The gate on the GPU, then GPT-2 decoding beside transformers (inference/bench_gpt2.py)."""
    from ..gpu.bench import gate
    from ..gpu.native import open_device
    from ..inference.bench_gpt2 import bench_inference as run, print_inference

    from ..gpu.gpt2_weights import WeightDtypeError, choose_weight_dtype

    ex = open_device(args.gpu)
    try:
        dtype = choose_weight_dtype(args.dtype, ex.features)
    except WeightDtypeError as e:
        raise UserError(str(e)) from None
    print(f"adapter: {ex.adapter_info}")
    results, _, _ = gate(ex)
    out = {"backend": "gpu", "engine": ex.engine, "adapter": ex.adapter_info,
           "gate": [{"name": r.name, "passed": r.passed, "error": r.error} for r in results]}
    if all(r.passed for r in results):
        out["inference"] = run(ex, args.inference, args.new_tokens, args.prompt_tokens, dtype=dtype)
        print_inference(out["inference"])
    return out


def _check_inference(args) -> None:
    from ..inference.bench_gpt2 import SIZES, config_for

    if args.inference not in SIZES:
        raise UserError(f"unknown GPT-2 size {args.inference!r}; choose from {', '.join(SIZES)}")
    if args.backend != "gpu":
        raise UserError("--inference runs on the GPU: add --backend gpu")
    context = config_for(args.inference).n_positions
    if args.prompt_tokens + args.new_tokens > context:
        raise UserError(f"{args.prompt_tokens} prompt + {args.new_tokens} new tokens exceed the context ({context})")


def _check_json_path(path: str) -> None:
    """The --json file can be written once the bench ends (its folder exists and is writable, and it is
    not a folder itself): checked before any work, so that a typo does not cost a whole run."""
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise UserError(f"--json {path} is a folder, not a file")
    if not folder.is_dir():
        raise UserError(f"--json {path}: no folder {folder}")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UserError(f"--json {path}: not writable")


def cmd_bench(args) -> int:
    _models(args.models)  # validate before any work
    if args.json:
        _check_json_path(args.json)
    if args.precision == "mixed" and (args.backend != "gpu" or args.inference):
        raise UserError("--precision mixed times the training step on the GPU: use --backend gpu without --inference")
    if args.inference:
        _check_inference(args)
        res = bench_inference(args)
    elif args.backend == "numpy":
        res = bench_numpy(args)
    else:
        from ..gpu.bench import bench_gpu

        res = bench_gpu(args)
    res["versions"] = _versions()
    res["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    res["command"] = "tabgpt " + " ".join(sys.argv[1:])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
        print(f"wrote {args.json}")
    gate_failed = any(not r["passed"] for r in res["gate"])
    return 1 if gate_failed else 0
