"""The attention as 64 x 64 block products against the rows kernels (an experiment): each kernel alone at
the medium and large shapes (B = 8), then the medium and large training steps for each variant, twice,
alternating.

    python3 benchmarks/probes/attention_blocks_probe.py dawn OUT.json NAME=DIR+KERNELS ... [--smoke]

DIR is a shader folder (a copy of shaders/); KERNELS which attention kernels the steps use: rows (both
rows kernels: attention_ops' rules forced off), bwd (the blocks backward only), both (the blocks forward
and backward: the rules as committed), both64 (both, for 64-wide heads only: the first rule), bothall
(both, at any context length)."""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[2]))
from attention_probe_timing import attention_inputs, timed  # noqa: E402

from pyscript_app.gpu import attention_ops, step_bench  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402

SHAPES = {"medium": (8, 128, 256, 8), "large": (8, 256, 512, 8)}
RULES = {name: getattr(attention_ops, name) for name in (
    "forward_choice", "backward_choice", "BLOCKS_MIN_HEAD_DIM", "BLOCKS_MIN_CONTEXT")}


def no_gpu(rule):
    return lambda D, T, adapter_info, workgroup_bytes: rule(D, T, None, 0)  # as on a CPU adapter


def choose(kernels: str) -> None:
    """attention_ops' rules for one variant (see the docstring)."""
    for name, value in RULES.items():
        setattr(attention_ops, name, value)
    if kernels in ("rows", "bwd"):
        attention_ops.forward_choice = no_gpu(RULES["forward_choice"])
    if kernels == "rows":
        attention_ops.backward_choice = no_gpu(RULES["backward_choice"])
    if kernels == "both64":
        attention_ops.BLOCKS_MIN_HEAD_DIM = 64
    if kernels == "bothall":
        attention_ops.BLOCKS_MIN_CONTEXT = 1


def alone(ex, smoke):
    out = {}
    for shape, (B, T, C, H) in ({"nano": (2, 16, 64, 2)} if smoke else SHAPES).items():
        qkv, dy, y, lse, dqkv, dims = attention_inputs(ex, B, T, C, H)
        D = C // H
        rows_fwd = attention_ops.rows_forward_overrides(D, T)
        out[shape] = {
            "rows_forward_ms": timed(ex, "attention_rows_forward", [qkv, y, lse], dims, rows_fwd),
            "blocks_forward_ms": timed(ex, "attention_blocks_forward", [qkv, y, lse], dims, {"D": D}),
        }
        bufs = [dy, qkv, y, lse, dqkv]
        out[shape]["rows_backward_ms"] = timed(ex, "attention_rows_backward", bufs, dims,
                                               attention_ops.rows_backward_overrides(D, T))
        out[shape]["blocks_backward_ms"] = timed(ex, "attention_blocks_backward", bufs, dims, {"D": D})
        print(shape, {k: round(v, 4) for k, v in out[shape].items()}, flush=True)
    return out


def main():
    engine, out_path = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    variants = [a.split("=", 1) for a in sys.argv[3:] if "=" in a]
    res = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "variants": dict(variants), "alone": {}, "steps": []}
    dirs = {d.split("+")[0] for _, d in variants}
    devices = {d: open_device(engine, shader_dir=d) for d in sorted(dirs)}
    res["adapter"] = next(iter(devices.values())).adapter_info
    for d, ex in devices.items():
        res["alone"][d] = alone(ex, smoke)
    for _ in range(2):
        for name, spec in variants:
            d, _, kernels = spec.partition("+")
            choose(kernels or "both")
            row = {"name": name}
            for model in ["nano"] if smoke else ["small", "medium", "large"]:
                t = run_sync(step_bench.time_step(devices[d], model, batch=8, repeats=10, runs=3))
                row[model] = round(t.ms_per_step, 4)
            print(row, flush=True)
            res["steps"].append(row)
    choose("both")
    json.dump(res, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main()
