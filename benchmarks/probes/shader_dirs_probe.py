"""Question: does a candidate shader folder (a copy of shaders/ with a kernel changed: subgroups, deeper
k-slices, a new GEMM core) make the GEMMs and the training steps faster than the committed kernels?

The two folders compared through the project's own dispatches: GEMM 4096^3 and the large model's forward
shapes (matmul_forward at the model's tiles, each checked against numpy on its first rows), the large
model's normed products (matmul_forward_rmsnorm(_relu) at its qkv and fc shapes, as the step dispatches
them), then the small, medium and large training steps (B=8), each folder twice, alternating (a GPU's
speed drifts over minutes).

    python3 benchmarks/probes/shader_dirs_probe.py dawn OUT.json BASE_DIR NEW_DIR [--smoke]"""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pyscript_app.gpu import step_bench  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402


def time_forward(ex, N, K, M, reps, extra):
    """matmul_forward (N,K)x(K,M) at the model's tiles plus `extra` overrides, replayed `reps` times per
    submission: {"ms" (the middle of 3 runs), "tflops", "rel_err" (first 8 rows against numpy)}."""
    import numpy as np
    from pyscript_app.gpu.executor import run_sync
    from pyscript_app.gpu.registry import matmul_entry
    from pyscript_app.gpu.matmul_rules import matmul_forward_tiles
    r = np.random.default_rng(0)
    x = ex.upload(r.standard_normal(N * K, dtype=np.float32).tobytes())
    w = ex.upload(r.standard_normal(K * M, dtype=np.float32).tobytes())
    y = ex.alloc(4 * N * M)
    ex.begin_plan()
    ex.dispatch(matmul_entry("matmul_forward", N, K, M, ex.adapter_info), [x, w, y],
                {"N": N, "K": K, "M": M, "accumulate": 0}, overrides={**matmul_forward_tiles(N, K, M), **extra})
    plan = ex.end_plan()
    run_sync(ex.read(y, 4))
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            ex.replay(plan)
        run_sync(ex.read(y, 4))
        runs.append((time.perf_counter() - t0) * 1e3 / reps)
    got = np.frombuffer(run_sync(ex.read(y, 4 * M * 8)), np.float32).reshape(8, M)  # first 8 rows checked
    xs = np.frombuffer(run_sync(ex.read(x, 4 * K * 8)), np.float32).reshape(8, K).astype(np.float64)
    ws = np.frombuffer(run_sync(ex.read(w, 4 * K * M)), np.float32).reshape(K, M).astype(np.float64)
    ref = xs @ ws
    err = float(np.abs(got - ref).max() / np.abs(ref).max())
    for b in (x, w, y):
        ex.release(b)
    runs.sort()
    return {"ms": runs[1], "tflops": 2 * N * K * M / runs[1] / 1e9, "rel_err": err}


def time_normed(ex, kernel, N, K, M, reps):
    """`kernel` (matmul_forward_rmsnorm or _relu, the step's entry and overrides for the shape) replayed
    `reps` times per submission: {"ms" (middle of 3 runs), "tflops"}."""
    import numpy as np
    from pyscript_app.gpu.matmul_rules import matmul_forward_overrides
    from pyscript_app.gpu.registry import matmul_entry
    r = np.random.default_rng(0)
    bufs = [ex.upload(r.standard_normal(n, dtype=np.float32).tobytes()) for n in (N * K, K * M, K)]
    bufs += [ex.alloc(4 * n) for n in (N * M, N * K, N)]
    ex.begin_plan()
    ex.dispatch(matmul_entry(kernel, N, K, M, ex.adapter_info), bufs, {"N": N, "K": K, "M": M, "eps": 1e-5},
                overrides=matmul_forward_overrides(kernel, N, K, M, ex.adapter_info, ex.max_workgroup_bytes))
    plan = ex.end_plan()
    run_sync(ex.read(bufs[3], 4))
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            ex.replay(plan)
        run_sync(ex.read(bufs[3], 4))
        runs.append((time.perf_counter() - t0) * 1e3 / reps)
    for b in bufs:
        ex.release(b)
    runs.sort()
    return {"ms": runs[1], "tflops": 2 * N * K * M / runs[1] / 1e9}


NORMED = [("matmul_forward_rmsnorm", 2048, 512, 1536, 50), ("matmul_forward_rmsnorm_relu", 2048, 512, 2048, 50)]
SHAPES = [(4096, 4096, 4096, 20), (2048, 512, 1536, 50), (2048, 512, 2048, 50), (2048, 2048, 512, 50)]
SMOKE_SHAPES = [(256, 128, 256, 2), (300, 64, 128, 2)]


def measure(ex, name: str, smoke: bool) -> dict:
    """GEMMs (SHAPES, N x K x M, through time_forward) and the small, medium and large steps on `ex`; printed."""
    row = {"name": name, "gemm": {}, "steps": {}}
    for N, K, M, reps in SMOKE_SHAPES if smoke else SHAPES:
        row["gemm"][f"{N}x{K}x{M}"] = time_forward(ex, N, K, M, reps, {})
    for kernel, N, K, M, reps in [("matmul_forward_rmsnorm_relu", 256, 128, 256, 2)] if smoke else NORMED:
        row["gemm"][f"{kernel} {N}x{K}x{M}"] = time_normed(ex, kernel, N, K, M, reps)
    for model in ["nano"] if smoke else ["small", "medium", "large"]:
        t = run_sync(step_bench.time_step(ex, model, batch=8, repeats=10, runs=3))
        row["steps"][model] = round(t.ms_per_step, 4)
    print(name, {s: (round(v["tflops"], 1), f"{v.get('rel_err', 0):.1e}") for s, v in row["gemm"].items()},
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
