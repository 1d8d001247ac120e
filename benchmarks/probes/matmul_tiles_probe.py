"""Two versions of shaders/matmul.wgsl (OLD_DIR and NEW_DIR: shader folders), at tiles 128 and 64,
at 4096^3 and the model's shapes, forward and backward_dw; PyTorch fp32 (TF32 off) alongside. Dawn.

    python3 benchmarks/probes/matmul_tiles_probe.py OLD_DIR OUT.json NEW_DIR     # on the GPU machine
    SMOKE=1 python3 benchmarks/probes/matmul_tiles_probe.py OLD_DIR OUT.json NEW_DIR   # llvmpipe, tiny
    TILES=64,32 SHAPES=256x256x64x200,... python3 benchmarks/probes/matmul_tiles_probe.py ...  # other tiles /
                                                                  # shapes (NxKxMxREPS)

Each entry: (ms per dispatch, TFLOP/s, max relative error of the first 64 output rows). Used to pick
matmul_rules.MATMUL_BIG_TILE_WORKGROUPS (benchmarks/results/matmul-tiles-h200-dawn-2026-11-22.json:
old = the kernel before the software-pipelined k loop, new = after)."""
import sys, time, json
import numpy as np
sys.path.insert(0, '.')
from pyscript_app.gpu.native import open_device
from pyscript_app.gpu.executor import run_sync

def t_matmul(ex, kernel, N, K, M, T, reps):
    """forward: y (N,M) = x (N,K) @ w (K,M); backward_dw: dw (K,M) = x.T @ dy (N,M)."""
    r = np.random.default_rng(0)
    fwd = kernel == "matmul_forward"
    xa = r.standard_normal((N, K), dtype=np.float32)
    ba = r.standard_normal((K, M) if fwd else (N, M), dtype=np.float32)
    x, b = ex.upload(xa.tobytes()), ex.upload(ba.tobytes())
    out_shape = (N, M) if fwd else (K, M)
    y = ex.alloc(4 * out_shape[0] * out_shape[1])
    params = {"N": N, "K": K, "M": M, "accumulate": 0}
    ov = {"TM": T, "TN": T}
    ex.dispatch(kernel, [x, b, y], params, overrides=ov); run_sync(ex.read(y, 4))
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            ex.dispatch(kernel, [x, b, y], params, overrides=ov)
        run_sync(ex.read(y, 4)); runs.append((time.perf_counter() - t0) / reps)
    out = np.frombuffer(run_sync(ex.read(y)), np.float32).reshape(out_shape)
    ref = xa[:64].astype(np.float64) @ ba if fwd else xa.T[:64].astype(np.float64) @ ba
    err = float(np.abs(out[:64] - ref).max() / np.abs(ref).max())
    for buf in (x, b, y): ex.release(buf)
    dt = sorted(runs)[1]
    return round(dt * 1e3, 4), round(2 * N * K * M / dt / 1e12, 2), err


import os
SMOKE = bool(os.environ.get("SMOKE"))
TILES = [int(t) for t in os.environ.get("TILES", "128,64").split(",")]  # tile sizes to compare
shapes = [(int(a), int(b), int(c), int(d)) for a, b, c, d in (x.split("x") for x in os.environ["SHAPES"].split(","))] if os.environ.get("SHAPES") else [(4096, 4096, 4096, 10), (2048, 512, 2048, 50), (2048, 2048, 512, 50), (2048, 512, 1536, 50), (1024, 1024, 256, 100), (1024, 256, 1024, 100), (512, 512, 128, 100)]
if SMOKE: shapes = [(130, 64, 96, 2)]
res = {}
for tag, d in (("old", sys.argv[1]), ("new", sys.argv[3])):
    ex = open_device("wgpu-native" if SMOKE else "dawn", shader_dir=d)
    for N, K, M, reps in shapes:
        for T in TILES:
            for kernel in ("matmul_forward", "matmul_backward_dw"):
                if kernel == "matmul_backward_dw" and T != 128 and N == 4096: continue
                key = f"{N}x{K}x{M} {kernel} T{T}"
                res.setdefault(key, {})[tag] = t_matmul(ex, kernel, N, K, M, T, reps)
if SMOKE:
    shapes = []
else:
    import torch
if not SMOKE: torch.backends.cuda.matmul.allow_tf32 = False
for N, K, M, reps in shapes:
    a = torch.randn(N, K, device="cuda"); b = torch.randn(K, M, device="cuda")
    for _ in range(3): a @ b
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(reps): a @ b
    torch.cuda.synchronize(); dt = (time.perf_counter() - t0) / reps
    res[f"{N}x{K}x{M} torch"] = {"torch": (round(dt * 1e3, 4), round(2 * N * K * M / dt / 1e12, 2))}
for k, v in res.items(): print(k, v)
json.dump(res, open(sys.argv[2], "w"), indent=1)
