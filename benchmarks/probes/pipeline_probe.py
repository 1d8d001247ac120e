"""k-loop probe (an experiment): the project's matmul entries with registry.matmul_pipeline's choices
against the two-buffer default, through the executor and the model's own dispatches: GEMM 4096^3 and
the large model's forward shapes, then the medium and large training steps (B=8). Rules, each applied
to every matmul dispatch of the step (model_ops.matmul_pipeline patched):
  two_buffers: the shader defaults (STAGES 2, 8-deep slices);
  committed:   registry.matmul_pipeline (128 x 128 tiles: one buffer, 16-deep slices);
  single64:    committed, and 64 x 64 tiles with one buffer too (8-deep slices).

    python3 benchmarks/probes/pipeline_probe.py dawn OUT.json          # on the GPU machine
    python3 benchmarks/probes/pipeline_probe.py wgpu-native OUT.json --smoke
"""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from dawn_toggles_probe import time_forward  # noqa: E402

from pyscript_app.gpu import model_ops, registry, step_bench  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402


def rule(name):
    def two_buffers(tiles, info=None, wg=16384):
        return dict(tiles)

    def single64(tiles, info=None, wg=16384):
        out = registry.matmul_pipeline(tiles, info, wg)
        if out.get("TM") == 64 and out.get("TN") == 64:
            out["STAGES"] = 1
        return out
    return {"two_buffers": two_buffers, "committed": registry.matmul_pipeline, "single64": single64}[name]


def main():
    engine, out_path = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    ex = open_device(engine)
    if smoke:  # llvmpipe is a CPU adapter: pretend, to run the GPU choices
        ex.adapter_info["adapter_type"] = "DiscreteGPU"
    shapes = [(256, 128, 256, 2)] if smoke else [(4096, 4096, 4096, 20), (2048, 512, 1536, 50),
                                                  (2048, 512, 2048, 50), (2048, 2048, 512, 50)]
    models = ["nano"] if smoke else ["medium", "large"]
    res = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "adapter": ex.adapter_info,
           "max_workgroup_bytes": ex.max_workgroup_bytes, "rules": {}}
    for name in ("two_buffers", "committed", "single64", "two_buffers", "committed"):
        r = rule(name)
        model_ops.matmul_pipeline = r
        row = {"gemm": {}, "steps": {}}
        for N, K, M, reps in shapes:
            extra = r(registry.matmul_forward_tiles(N, K, M), ex.adapter_info, ex.max_workgroup_bytes)
            row["gemm"][f"{N}x{K}x{M}"] = {**time_forward(ex, N, K, M, reps, extra), "overrides": extra}
        for model in models:
            t = run_sync(step_bench.time_step(ex, model, batch=8, repeats=10, runs=3))
            row["steps"][model] = round(t.ms_per_step, 4)
        key = name if name not in res["rules"] else name + " (again)"
        res["rules"][key] = row
        print(key, json.dumps(row), flush=True)
    json.dump(res, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main()
