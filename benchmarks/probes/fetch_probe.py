"""Fetch probe (an experiment): how the bounds tests of the _v4 entries' global loads cost, in the project's
own kernels (each variant a patched copy of shaders/, the executor's shader_dir): GEMM 4096^3, the large
model's forward shapes, and the medium and large training steps (B=8).

    python3 benchmarks/probes/fetch_probe.py dawn OUT.json            # on the GPU machine
    python3 benchmarks/probes/fetch_probe.py wgpu-native OUT.json --smoke

Variants of fetch0v / fetch1v / fetch2v (matmul_vec4.wgsl):
  base:    `if (outside) { return 0 }` then the load (a branch around every load);
  nocheck: the load alone (wrong at edges: an upper bound, 4096^3 and the model's shapes have none);
  select:  an unconditional load at a clamped index and select(0, v, inside) (no branch);
and each with the k loop's single-buffer option at 128 x 128 (KSLICE 16, STAGES 1)."""
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from dawn_toggles_probe import time_forward  # noqa: E402

from pyscript_app.gpu import model_ops, registry, step_bench  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402
from pyscript_app.gpu.registry import shader_dir  # noqa: E402

CHECK = "  if (k >= I || u >= op.u_count) { return vec4<f32>(0.0); }\n  return in{n}v[(u * op.u_stride + k * op.k_stride) / 4u];"
SELECT = ("  let i = min((u * op.u_stride + k * op.k_stride) / 4u, arrayLength(&in{n}v) - 1u);\n"
          "  return select(vec4<f32>(0.0), in{n}v[i], k < I && u < op.u_count);")
NOCHECK = "  return in{n}v[(u * op.u_stride + k * op.k_stride) / 4u];"


def variant_dir(root: Path, name: str) -> Path:
    d = root / name
    shutil.copytree(shader_dir(), d)
    f = d / "matmul_vec4.wgsl"
    s = f.read_text()
    for n in range(3):
        old = CHECK.replace("{n}", str(n))
        assert old in s, old
        if name.startswith("nocheck"):
            s = s.replace(old, NOCHECK.replace("{n}", str(n)))
        elif name.startswith("select"):
            s = s.replace(old, SELECT.replace("{n}", str(n)))
    f.write_text(s)
    return d


def single(tiles, info=None, wg=0):
    out = dict(tiles)
    if out.get("TM") == 128 and out.get("TN") == 128:
        out.update(registry.MATMUL_SINGLE_STAGE)
    return out


def main():
    engine, out_path = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    shapes = [(256, 128, 256, 2), (300, 64, 128, 2)] if smoke else [
        (4096, 4096, 4096, 20), (2048, 512, 1536, 50), (2048, 512, 2048, 50), (2048, 2048, 512, 50)]
    models = ["nano"] if smoke else ["medium", "large"]
    res = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "variants": {}}
    plain = lambda tiles, info=None, wg=0: dict(tiles)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("base", "nocheck", "select", "base_single", "select_single", "base"):
            ex = open_device(engine, shader_dir=variant_dir(Path(tmp), name + str(len(res["variants"]))))
            rule = single if name.endswith("_single") else plain
            model_ops.matmul_pipeline = rule
            row = {"gemm": {}, "steps": {}}
            for N, K, M, reps in shapes:
                extra = rule(registry.matmul_forward_tiles(N, K, M))
                row["gemm"][f"{N}x{K}x{M}"] = time_forward(ex, N, K, M, reps, extra)
            for model in models:
                t = run_sync(step_bench.time_step(ex, model, batch=8, repeats=10, runs=3))
                row["steps"][model] = round(t.ms_per_step, 4)
            key = name if name not in res["variants"] else name + " (again)"
            res["variants"][key] = row
            print(key, {s: (round(v["tflops"], 1), f"{v['rel_err']:.1e}") for s, v in row["gemm"].items()},
                  row["steps"], flush=True)
    json.dump(res, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main()
