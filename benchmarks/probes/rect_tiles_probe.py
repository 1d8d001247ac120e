"""Rectangular tiles probe (an experiment): matmul_forward at the large model's shapes and 4096^3 with
128 x 128, 64 x 128, 128 x 64 and 64 x 64 tiles (TM x TN).

    python3 benchmarks/probes/rect_tiles_probe.py dawn|wgpu-native OUT.json"""
import sys, json
sys.path.insert(0, "."); sys.path.insert(0, "benchmarks/probes")
from dawn_toggles_probe import time_forward
from pyscript_app.gpu.native import open_device
ex = open_device(sys.argv[1])
out = {}
for (N, K, M) in [(2048, 512, 1536), (2048, 512, 2048), (2048, 2048, 512), (2048, 512, 512), (4096, 4096, 4096)]:
    for t in [(128, 128), (64, 128), (128, 64), (64, 64)]:
        r = time_forward(ex, N, K, M, 30 if N < 4096 else 10, {"TM": t[0], "TN": t[1]})
        out[f"{N}x{K}x{M} {t[0]}x{t[1]}"] = r
        print(N, K, M, t, round(r["tflops"], 1), f"{r['rel_err']:.1e}", flush=True)
json.dump(out, open(sys.argv[2], "w"), indent=1)
