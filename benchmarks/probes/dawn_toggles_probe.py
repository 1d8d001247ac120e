"""Dawn toggles probe (an experiment): what Dawn's shader robustness costs our kernels natively.

Dawn compiles WGSL with Tint's robustness transform: every storage and workgroup array index gets
clamped (`min(i, len - 1)`), which also stops the driver from folding constant offsets into loads.
Chrome must keep it; a native trainer of its own kernels may choose otherwise. Each toggle set
runs in its own process (toggles are fixed when the device is made) and times, with the project's
kernels and tile rules: GEMM 4096^3, the large model's four
GEMM shapes, and the medium and large training steps (B=8). PyTorch fp32 (TF32 off) in the parent.

    python3 benchmarks/probes/dawn_toggles_probe.py OUT.json          # on the GPU machine
    python3 benchmarks/probes/dawn_toggles_probe.py --child a,b       # one toggle set, JSON on stdout
"""
import json
import subprocess
import sys
import time

TOGGLE_SETS = [
    "",  # first run also warms the GPU's clocks; repeated at the end
    "enable_integer_range_analysis_in_robustness",
    "vulkan_use_buffer_robust_access_2",
    "vulkan_use_buffer_robust_access_2,enable_integer_range_analysis_in_robustness",
    "disable_robustness",
    "disable_robustness,disable_workgroup_init",
    "",
]
SHAPES = [(4096, 4096, 4096, 10), (2048, 512, 1536, 50), (2048, 512, 2048, 50), (2048, 2048, 512, 50),
          (2048, 512, 1024, 50)]


def time_forward(ex, N, K, M, reps, extra):
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


def child(toggles: str) -> dict:
    from pyscript_app.gpu.bench import time_gpu_step
    from pyscript_app.gpu.native import open_device
    names = tuple(t for t in toggles.split(",") if t)
    ex = open_device("dawn", dawn_toggles=names)
    out = {"toggles": names, "gemm": {}, "steps": {}}
    for N, K, M, reps in SHAPES:
        out["gemm"][f"{N}x{K}x{M}"] = time_forward(ex, N, K, M, reps, {})
    for name in ("medium", "large"):
        ms, dispatches = time_gpu_step(ex, name, 10)
        out["steps"][name] = {"ms": ms, "dispatches": dispatches}
    return out


def torch_reference() -> dict:
    import torch
    from pyscript_app.gpu.bench import _time_torch_matmul, time_torch_step
    torch.backends.cuda.matmul.allow_tf32 = False
    out = {"gemm": {}, "steps": {}}
    for N, K, M, reps in SHAPES:
        ms = _time_torch_matmul(torch, "cuda", N, K, M, reps)
        out["gemm"][f"{N}x{K}x{M}"] = {"ms": ms, "tflops": 2 * N * K * M / ms / 1e9}
    for name in ("medium", "large"):
        out["steps"][name] = {"ms": time_torch_step(torch, "cuda", name, 10)}
    return out


def main():
    if sys.argv[1] == "--child":
        print("RESULT " + json.dumps(child(sys.argv[2] if len(sys.argv) > 2 else "")))
        return
    res = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": []}
    for toggles in TOGGLE_SETS:
        p = subprocess.run([sys.executable, __file__, "--child", toggles], capture_output=True, text=True)
        line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
        row = json.loads(line[0][7:]) if line else {"toggles": toggles, "error": p.stderr[-2000:]}
        res["runs"].append(row)
        print(json.dumps(row), flush=True)
    res["torch"] = torch_reference()
    print(json.dumps(res["torch"]), flush=True)
    json.dump(res, open(sys.argv[1], "w"), indent=1)


if __name__ == "__main__":
    main()
