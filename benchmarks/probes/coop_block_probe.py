"""Question: which matmul_coop block should each product of the mixed-precision step get? The step of
each preset timed with every product on one candidate block (gpu/coop_rules.coop_block replaced for
the run), and with the rules' own choice.

    python3 benchmarks/probes/coop_block_probe.py OUT.json [large,medium] [--shader-dir=DIR]

(--shader-dir: the kernels from another folder, e.g. an earlier matmul_coop.wgsl, for a before/after.)

Blocks are (WY, WX subgroups; RT, CT 16 x 16 tiles each; BK)."""
import json
import sys
import time

from pyscript_app.gpu import coop_rules, model_ops, step_bench
from pyscript_app.gpu.executor import run_sync
from pyscript_app.gpu.native import open_device

CANDIDATES = {
    "128x128 (2,2,4,4,32)": coop_rules.COOP_BIG,
    "64x64 (2,2,2,2,32)": coop_rules.COOP_SMALL,
    "32x32 (2,2,1,1,64)": coop_rules.COOP_TINY,
    "64x64 (2,2,2,2,64)": {"WY": 2, "WX": 2, "RT": 2, "CT": 2, "BK": 64},
}


def main() -> int:
    models = (sys.argv[2] if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else "large,medium").split(",")
    shaders = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--shader-dir=")), None)
    ex = open_device("dawn", mixed=True, shader_dir=shaders)
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv), "adapter": ex.adapter_info,
           "shader_dir": shaders,
           "rows": []}
    rule = coop_rules.coop_block
    # one untimed step first: the first step timed in a process ran ~0.4 ms slower (the GPU's clocks)
    run_sync(step_bench.time_step(ex, models[0], batch=8, repeats=10, runs=1, precision="mixed"))
    for name in ["rules", *CANDIDATES]:
        model_ops.coop_block = rule if name == "rules" else (lambda N, K, M, b=CANDIDATES[name]: dict(b))
        for model in models:
            row = {"block": name, "model": model}
            try:
                t = run_sync(step_bench.time_step(ex, model, batch=8, repeats=10, runs=3, precision="mixed"))
                row.update(ms=t.ms_per_step, runs_ms=list(t.runs_ms), dispatches=t.dispatches_per_step)
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {e}"[:500]
            out["rows"].append(row)
            print(json.dumps(row), flush=True)
    model_ops.coop_block = rule
    json.dump(out, open(sys.argv[1], "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
