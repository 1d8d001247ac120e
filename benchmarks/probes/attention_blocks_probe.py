"""The attention backward as 64 x 64 block products against the rows kernel (an experiment): each kernel
alone at the medium and large shapes (B = 8), then the medium and large training steps with and
without the blocks kernel (attention_ops.backward_choice's rule on, and forced off), twice, alternating.
With NAME=DIR arguments, every shader folder is measured that way (the blocks kernel's variants);
NAME=DIR+d32 also lets the blocks kernel take 32-wide heads (padded to 64) in the steps.

    python3 benchmarks/probes/attention_blocks_probe.py dawn OUT.json [NAME=DIR ...] [--smoke]"""
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
_rule = attention_ops.backward_choice


def rows_only(D, T, adapter_info, workgroup_bytes):
    return _rule(D, T, None, 0)  # no GPU adapter: the rows (or column) kernel


def alone(ex, smoke):
    out = {}
    for shape, (B, T, C, H) in ({"nano": (2, 16, 64, 2)} if smoke else SHAPES).items():
        qkv, dy, y, lse, dqkv, dims = attention_inputs(ex, B, T, C, H)
        D = C // H
        ex.dispatch("attention_rows_forward", [qkv, y, lse], dims, overrides=attention_ops.rows_forward_overrides(D, T))
        bufs = [dy, qkv, y, lse, dqkv]
        rows = timed(ex, "attention_rows_backward", bufs, dims, attention_ops.rows_backward_overrides(D, T))
        blocks = timed(ex, "attention_blocks_backward", bufs, dims, {"D": D})
        out[shape] = {"rows_ms": rows, "blocks_ms": blocks}
        print(shape, out[shape], flush=True)
    return out


def main():
    engine, out_path = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    dirs = [a.split("=", 1) for a in sys.argv[3:] if "=" in a] or [("shaders", None)]
    res = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "dirs": dict(dirs), "alone": {}, "steps": []}
    devices = {name: open_device(engine, shader_dir=d and d.split("+")[0]) for name, d in dirs}
    min_dim = attention_ops.BLOCKS_BACKWARD_MIN_HEAD_DIM
    res["adapter"] = next(iter(devices.values())).adapter_info
    for name, ex in devices.items():
        res["alone"][name] = alone(ex, smoke)
    for _ in range(2):
        for name, ex in [("rows", devices[dirs[0][0]])] + list(devices.items()):
            attention_ops.backward_choice = rows_only if name == "rows" else _rule
            d32 = name != "rows" and (dict(dirs)[name] or "").endswith("+d32")
            attention_ops.BLOCKS_BACKWARD_MIN_HEAD_DIM = 32 if d32 else min_dim
            row = {"name": name}
            for model in ["nano"] if smoke else ["medium", "large"]:
                t = run_sync(step_bench.time_step(ex, model, batch=8, repeats=10, runs=3))
                row[model] = round(t.ms_per_step, 4)
            print(row, flush=True)
            res["steps"].append(row)
    attention_ops.backward_choice = _rule
    attention_ops.BLOCKS_BACKWARD_MIN_HEAD_DIM = min_dim
    json.dump(res, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main()
