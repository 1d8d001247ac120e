"""Attention forward key-parts probe (an experiment): attention_rows_forward with each row's keys split over
PARTS invocations (merged at the end), at the medium and large presets' shapes (B=8, full context), against
PARTS = 1; each variant checked against the first one's y before it is timed.

    python3 benchmarks/probes/attention_parts_probe.py dawn|wgpu-native OUT.json [--smoke]

Times as attention_probe.py: median of 3 runs of 20 replays of one dispatch, after a warm-up."""
import json
import sys
import time

import numpy as np

sys.path.insert(0, ".")
sys.path.insert(0, "benchmarks/probes")
from attention_probe_timing import timed  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402

VARIANTS = [(64, 16, 1), (64, 16, 2), (64, 16, 4), (32, 16, 1), (32, 16, 2), (32, 16, 4), (16, 16, 4),
            (32, 32, 4), (64, 16, 1)]


def main():
    ex = open_device(sys.argv[1])
    smoke = "--smoke" in sys.argv
    shapes = {"nano-ish": (1, 40, 128, 2)} if smoke else {"medium": (8, 128, 256, 8), "large": (8, 256, 512, 8)}
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "adapter": ex.adapter_info, "shapes": {}}
    for name, (B, T, C, H) in shapes.items():
        D = C // H
        r = np.random.default_rng(0)
        qkv = ex.upload((r.standard_normal(B * T * 3 * C) * 1.5).astype(np.float32).tobytes())
        y, lse = ex.alloc(4 * B * T * C), ex.alloc(4 * B * H * T)
        dims = {"B": B, "T": T, "C": C, "H": H}
        rows, ref = {}, None
        for i, (R, KT, P) in enumerate(VARIANTS):
            over = {"D": D, "ROWS": R, "KT": KT, "PARTS": P}
            ex.dispatch("attention_rows_forward", [qkv, y, lse], dims, overrides=over)
            got = np.frombuffer(run_sync(ex.read(y)), np.float32).copy()
            if ref is None:
                ref = got
                for _ in range(1 if smoke else 10):  # warm-up: the GPU's clocks ramp up under load
                    timed(ex, "attention_rows_forward", [qkv, y, lse], dims, over)
            err = float(np.abs(got - ref).max())
            key = f"R{R} KT{KT} P{P}" + (" (again)" if i == len(VARIANTS) - 1 else "")
            rows[key] = {"ms": timed(ex, "attention_rows_forward", [qkv, y, lse], dims, over, 2 if smoke else 20),
                         "max_abs_diff": err}
            print(name, key, rows[key], flush=True)
        out["shapes"][name] = rows
    json.dump(out, open(sys.argv[2], "w"), indent=1)


main()
