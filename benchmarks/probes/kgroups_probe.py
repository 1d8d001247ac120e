"""Sliced K probe (an experiment): matmul tiles whose workgroup is KGROUPS groups multiplying
consecutive k-slices at once (matmul_tiles.wgsl's KGROUPS override), for the products with few, long
tiles. Times matmul_forward alone at the large model's 64 x 64 shapes (fc_proj, proj) and 4096^3 for
each KGROUPS, then the medium and large training steps (B=8) with KGROUPS added to the 64 x 64 tiles
of the forward and/or backward products (matmul_rules tile rules patched in this process).

    python3 benchmarks/probes/kgroups_probe.py dawn|wgpu-native OUT.json [--smoke]"""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from dawn_toggles_probe import time_forward  # noqa: E402

from pyscript_app.gpu import matmul_rules, model_ops, step_bench  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402

SHAPES = [(2048, 2048, 512, 50), (2048, 512, 512, 50), (2048, 512, 2048, 50)]
STEP_VARIANTS = {"base": (1, 1), "fwd_kg2": (2, 1), "fwd_kg4": (4, 1), "both_kg2": (2, 2), "both_kg4": (4, 4),
                 "fwd_kg4_bwd_kg2": (4, 2), "base (again)": (1, 1)}
_fwd, _kg, _bwd = matmul_rules.matmul_forward_tiles, matmul_rules.matmul_forward_kgroups, model_ops.matmul_backward_tiles


def _with_kgroups(tiles: dict, kg: int) -> dict:
    return {**tiles, "KGROUPS": kg} if kg > 1 and tiles["TM"] == 64 and tiles["TN"] == 64 else tiles


def main():
    engine, out_path = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    ex = open_device(engine)
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "adapter": ex.adapter_info, "gemm": {}, "steps": {}}
    for N, K, M, reps in [(128, 256, 64, 2)] if smoke else SHAPES:
        for kg in (1, 2, 4, 1):
            r = time_forward(ex, N, K, M, reps, {"TM": 64, "TN": 64, "KGROUPS": kg})
            out["gemm"].setdefault(f"{N}x{K}x{M}", []).append({"KGROUPS": kg, **r})
            print(f"{N}x{K}x{M} KGROUPS={kg}", round(r["tflops"], 2), f"{r['rel_err']:.1e}", flush=True)
    for model in ["nano"] if smoke else ["medium", "large"]:
        for name, (fk, bk) in STEP_VARIANTS.items():
            matmul_rules.matmul_forward_kgroups = lambda N, M, tiles, *a: dict(tiles)  # the rule off: this probe's own choice
            matmul_rules.matmul_forward_tiles = lambda N, K, M, fk=fk: _with_kgroups(_fwd(N, K, M), fk)
            model_ops.matmul_backward_tiles = lambda *a, bk=bk: _with_kgroups(_bwd(*a), bk)
            t = run_sync(step_bench.time_step(ex, model, batch=8, repeats=10, runs=3))
            out["steps"].setdefault(model, {})[name] = round(t.ms_per_step, 4)
            print(model, name, round(t.ms_per_step, 4), flush=True)
    matmul_rules.matmul_forward_tiles, matmul_rules.matmul_forward_kgroups, model_ops.matmul_backward_tiles = _fwd, _kg, _bwd
    json.dump(out, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main()
