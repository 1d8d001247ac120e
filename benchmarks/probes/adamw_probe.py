"""Question: how many elements should each adamw_step invocation update on a GPU (the override PER_INV)?

Every adamw_step workgroup first sums the grad-norm partials itself (up to registry.MAX_NORM_PARTS of
them, then a tree of barriers) so that no dispatch of its own computes the clip factor. At `large`'s
26 M parameters and PER_INV = 1 that is about 100,000 workgroups each repeating that reduction; a
larger PER_INV repeats it fewer times over longer workgroups. Each value is forced through the
executor's override table (as an adapter's would be) and timed as whole steps, fp32 and mixed, in
interleaved rounds, the way the bench times them (gpu/step_bench.py: batch 8, full context). The
updated parameters are compared with PER_INV = 1's after two steps from the same state. Without a
device for mixed precision (lavapipe), fp32 only.

    python3 benchmarks/probes/adamw_probe.py OUT.json [large,medium] [1,4,16,64]
"""
import json
import sys
import time

import numpy as np

sys.path.insert(0, ".")
from pyscript_app.gpu import native, step_bench  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402


def forced(ex, per_inv: int) -> None:
    table = dict(ex.override_table)
    table["adamw_step"] = {**table.get("adamw_step", {}), "PER_INV": per_inv}
    ex.override_table = table


def params_after_one_step(ex, model: str, precision: str) -> np.ndarray:
    be, x, y = run_sync(step_bench.make_backend(ex, model, 8, precision=precision))
    run_sync(be.step(x, y, 1e-3))
    run_sync(be.pop_losses())
    return np.frombuffer(run_sync(ex.read(be.params)), np.float32).copy()


def main() -> int:
    out_path = sys.argv[1]
    models = (sys.argv[2] if len(sys.argv) > 2 else "large,medium").split(",")
    values = [int(v) for v in (sys.argv[3] if len(sys.argv) > 3 else "1,4,16,64").split(",")]
    try:
        ex = native.open_device("dawn", mixed=True)
    except native.GpuUnavailable:  # no matrix units here (lavapipe): the fp32 steps only
        ex = native.open_device("auto")
    precisions = ("fp32", "mixed") if ex.coop_ok else ("fp32",)
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "adapter": ex.adapter_info, "command": " ".join(sys.argv), "steps": {}, "same_update": {}}
    print(ex.adapter_info.get("device"), flush=True)
    base_table = dict(ex.override_table)
    for name in models:
        ref = None
        for v in values:
            forced(ex, v)
            got = params_after_one_step(ex, name, "fp32")
            ref = got if ref is None else ref
            out["same_update"][f"{name} PER_INV {v}"] = float(np.abs(got - ref).max())
        times = {}
        for _ in range(2):
            for precision in precisions:
                for v in values:
                    forced(ex, v)
                    t = run_sync(step_bench.time_step(ex, name, batch=8, repeats=10, runs=3, precision=precision))
                    times.setdefault(f"{precision} PER_INV {v}", []).append(t.ms_per_step)
                    print(f"{name} {precision} PER_INV {v}: {t.ms_per_step:.3f} ms", flush=True)
        out["steps"][name] = times
        json.dump(out, open(out_path, "w"), indent=1)
    ex.override_table = base_table
    print(out["same_update"], flush=True)
    json.dump(out, open(out_path, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
