"""Inner-loop probe (an experiment): variants of matmul_tiles.wgsl's multiply_tiles and k-slice depth,
each in its own copy of shaders/ (the executor's shader_dir), timed through the project's own entries:
GEMM 4096^3 and the large model's shapes (matmul_forward at the model's tiles), and the medium and
large training steps (B=8).

    python3 benchmarks/probes/inner_loop_probe.py dawn OUT.json         # on the GPU machine
    python3 benchmarks/probes/inner_loop_probe.py wgpu-native OUT.json --smoke

Variants: base (the committed kernels); prefetch (multiply_tiles reads slice k+1's four vec4 from
workgroup memory before slice k's 64 FMAs: register double-buffering); tk16 (128 x 128 tiles take a
16-deep k-slice: twice the workgroup memory, which native devices allow, half the barriers); both."""
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from dawn_toggles_probe import time_forward  # noqa: E402

from pyscript_app.gpu import step_bench  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402
from pyscript_app.gpu.registry import shader_dir  # noqa: E402

PREFETCH = '''fn multiply_tiles(buf: u32, tx: u32, ty: u32) {
  let a_hi = TM / 8u;
  let b_hi = TN / 8u;
  let a_base = buf * TK * A_ROW4;
  let b_base = buf * TK * B_ROW4;
  var a0 = a_tile[a_base + ty];
  var a1 = a_tile[a_base + a_hi + ty];
  var b0 = b_tile[b_base + tx];
  var b1 = b_tile[b_base + b_hi + tx];
  for (var k = 0u; k < TK; k++) {
    let kn = min(k + 1u, TK - 1u);
    let na0 = a_tile[a_base + kn * A_ROW4 + ty];
    let na1 = a_tile[a_base + kn * A_ROW4 + a_hi + ty];
    let nb0 = b_tile[b_base + kn * B_ROW4 + tx];
    let nb1 = b_tile[b_base + kn * B_ROW4 + b_hi + tx];
    c0a = fma(vec4<f32>(a0.x), b0, c0a); c0b = fma(vec4<f32>(a0.x), b1, c0b);
    c1a = fma(vec4<f32>(a0.y), b0, c1a); c1b = fma(vec4<f32>(a0.y), b1, c1b);
    c2a = fma(vec4<f32>(a0.z), b0, c2a); c2b = fma(vec4<f32>(a0.z), b1, c2b);
    c3a = fma(vec4<f32>(a0.w), b0, c3a); c3b = fma(vec4<f32>(a0.w), b1, c3b);
    c4a = fma(vec4<f32>(a1.x), b0, c4a); c4b = fma(vec4<f32>(a1.x), b1, c4b);
    c5a = fma(vec4<f32>(a1.y), b0, c5a); c5b = fma(vec4<f32>(a1.y), b1, c5b);
    c6a = fma(vec4<f32>(a1.z), b0, c6a); c6b = fma(vec4<f32>(a1.z), b1, c6b);
    c7a = fma(vec4<f32>(a1.w), b0, c7a); c7b = fma(vec4<f32>(a1.w), b1, c7b);
    a0 = na0; a1 = na1; b0 = nb0; b1 = nb1;
  }
}
'''
TK_LINE = "override TK: u32 = min(8u, min(TM, TN) / 8u);"
TK16 = "override TK: u32 = select(min(8u, min(TM, TN) / 8u), 16u, TM == 128u && TN == 128u);"


def variant_dir(root: Path, name: str) -> Path:
    d = root / name
    shutil.copytree(shader_dir(), d)
    f = d / "matmul_tiles.wgsl"
    s = f.read_text()
    if "prefetch" in name:
        start = s.index("fn multiply_tiles(")
        end = s.index("\n}\n", start) + 3
        s = s[:start] + PREFETCH + s[end:]
    if "tk16" in name:
        assert TK_LINE in s
        s = s.replace(TK_LINE, TK16)
    f.write_text(s)
    return d


def main():
    engine, out_path = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    shapes = [(256, 128, 256, 2)] if smoke else [(4096, 4096, 4096, 10), (2048, 512, 2048, 50),
                                                  (2048, 2048, 512, 50), (2048, 512, 1536, 50)]
    models = ["nano"] if smoke else ["medium", "large"]
    res = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("base", "prefetch", "tk16", "prefetch_tk16", "base"):
            ex = open_device(engine, shader_dir=variant_dir(Path(tmp), name + str(len(res["variants"]))))
            row = {"gemm": {}, "steps": {}}
            for N, K, M, reps in shapes:
                row["gemm"][f"{N}x{K}x{M}"] = time_forward(ex, N, K, M, reps, {})
            for model in models:
                t = run_sync(step_bench.time_step(ex, model, batch=8, repeats=10, runs=3))
                row["steps"][model] = round(t.ms_per_step, 4)
            key = name if name not in res["variants"] else name + " (again)"
            res["variants"][key] = row
            print(key, json.dumps(row), flush=True)
    json.dump(res, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main()
