"""Two shader folders compared through the project's own dispatches (an experiment): GEMM 4096^3 and the large
model's forward shapes (matmul_forward at the model's tiles), then the medium and large training steps (B=8),
each folder twice, alternating.

    python3 benchmarks/probes/shader_dirs_probe.py dawn OUT.json BASE_DIR NEW_DIR [--smoke]"""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from dawn_toggles_probe import time_forward  # noqa: E402

from pyscript_app.gpu import step_bench  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402


SHAPES = [(4096, 4096, 4096, 20), (2048, 512, 1536, 50), (2048, 512, 2048, 50), (2048, 2048, 512, 50)]
SMOKE_SHAPES = [(256, 128, 256, 2), (300, 64, 128, 2)]


def measure(ex, name: str, smoke: bool) -> dict:
    """GEMMs (SHAPES, N x K x M, through time_forward) and the small, medium and large steps on `ex`; printed."""
    row = {"name": name, "gemm": {}, "steps": {}}
    for N, K, M, reps in SMOKE_SHAPES if smoke else SHAPES:
        row["gemm"][f"{N}x{K}x{M}"] = time_forward(ex, N, K, M, reps, {})
    for model in ["nano"] if smoke else ["small", "medium", "large"]:
        t = run_sync(step_bench.time_step(ex, model, batch=8, repeats=10, runs=3))
        row["steps"][model] = round(t.ms_per_step, 4)
    print(name, {s: (round(v["tflops"], 1), f"{v['rel_err']:.1e}") for s, v in row["gemm"].items()},
          row["steps"], flush=True)
    return row


def main():
    engine, out_path, base, new = sys.argv[1:5]
    smoke = "--smoke" in sys.argv
    res = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "dirs": {"base": base, "new": new}, "runs": []}
    for name in ("base", "new", "base", "new"):
        res["runs"].append(measure(open_device(engine, shader_dir=res["dirs"][name]), name, smoke))
    json.dump(res, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main()
