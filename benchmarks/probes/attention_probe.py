"""Attention kernels timed alone at the medium and large presets' shapes (B=8, full context): attention.wgsl's
forward/backward against attention_rows*.wgsl's at several override values, each checked against the first
variant's output before it is timed.

    python3 benchmarks/probes/attention_probe.py dawn|wgpu-native OUT.json

Times: median over 3 runs of (20 replays of one dispatch in one submission, one readback) / 20, after a
warm-up (seen on an H200: the first timings of a fresh process ran at idle clocks, 2-5x slow).
$TABGPT_SHADERS points the registry at another shader folder (e.g. an older copy) for a comparison."""
import json
import sys
import time

import numpy as np

sys.path.insert(0, ".")
from pyscript_app.gpu.attention_ops import rows_backward_overrides, tile_rows  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402
sys.path.insert(0, "benchmarks/probes")
from attention_probe_timing import attention_inputs, timed  # noqa: E402

SHAPES = {"medium": (8, 128, 256, 8), "large": (8, 256, 512, 8)}


def main():
    ex = open_device(sys.argv[1])
    out = {"adapter": ex.adapter_info, "shapes": {}}
    for name, (B, T, C, H) in SHAPES.items():
        D = C // H
        qkv, dy, y, lse, dqkv, dims = attention_inputs(ex, B, T, C, H)
        rows = {}
        base = {"D": D, "BQ": tile_rows(D)}
        ex.dispatch("attention_forward", [qkv, y, lse], dims, overrides=base)
        ref_y = np.frombuffer(run_sync(ex.read(y)), np.float32).copy()
        for _ in range(10):  # warm-up: the GPU's clocks ramp up under load
            timed(ex, "attention_forward", [qkv, y, lse], dims, base)
        rows["attention_forward"] = timed(ex, "attention_forward", [qkv, y, lse], dims, base)
        for R in (32, 64, 128):
            for KT in (8, 16, 32):
                if 2 * KT * (D // 4) * 16 > 16384:
                    continue
                over = {"D": D, "ROWS": R, "KT": KT}
                ex.dispatch("attention_rows_forward", [qkv, y, lse], dims, overrides=over)
                got = np.frombuffer(run_sync(ex.read(y)), np.float32)
                err = float(np.abs(got - ref_y).max())
                rows[f"rows_forward R{R} KT{KT}"] = (timed(ex, "attention_rows_forward", [qkv, y, lse], dims, over), err)
        ex.dispatch("attention_backward", [dy, qkv, y, lse, dqkv], dims, overrides=base)
        ref_d = np.frombuffer(run_sync(ex.read(dqkv)), np.float32).copy()
        rows["attention_backward"] = timed(ex, "attention_backward", [dy, qkv, y, lse, dqkv], dims, base)
        for extra in ({}, {"ROWS": 32}, {"ROWS": 128}, {"KT": 8}, {"KT": 32}, {"QT": 4}):
            over = {**rows_backward_overrides(D, T), **extra}
            try:
                ex.dispatch("attention_rows_backward", [dy, qkv, y, lse, dqkv], dims, overrides=over)
                got = np.frombuffer(run_sync(ex.read(dqkv)), np.float32)
                err = float(np.abs(got - ref_d).max() / np.abs(ref_d).max())
                rows[f"rows_backward {extra}"] = (timed(ex, "attention_rows_backward",
                                                       [dy, qkv, y, lse, dqkv], dims, over), err)
            except Exception as e:  # a variant that does not compile or fit: report, go on
                rows[f"rows_backward {extra}"] = repr(e)[:200]
        out["shapes"][name] = rows
        print(name)
        for k, v in rows.items():
            print(f"  {k:40s} {v}")
    json.dump(out, open(sys.argv[2], "w"), indent=1, default=str)


if __name__ == "__main__":
    main()
