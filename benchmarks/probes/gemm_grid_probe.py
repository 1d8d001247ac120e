"""Question: are the matmul choice rules at the fastest configuration for each shape of the GEMM table,
or would other tiles, outputs per invocation or sliced K beat them (the model-shape target of 0.6x)?

Every matmul_forward configuration at the GEMM table's shapes: tiles (TM x TN),
outputs per invocation (RPI), sliced K (KGROUPS) and slice depth (TK, the default or twice it), each
timed exactly as `tabgpt bench`'s GEMM table times its row (gpu/bench._time_matmul: one submission of
gemm_repeats dispatches after an untimed warm-up, median of 3), next to the row's own choice
(matmul_rules.matmul_forward_overrides) and PyTorch. First the table's warm-up (bench.warm_up). Checks each
configuration's output against numpy once (small shapes) so a fast wrong kernel cannot win.

    python3 benchmarks/probes/gemm_grid_probe.py dawn OUT.json [MODELS] [--gemm 4096] [--smoke]"""
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pyscript_app.gpu import bench  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402
from pyscript_app.gpu.matmul_rules import matmul_forward_overrides, matmul_slice_depth  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402
from pyscript_app.gpu import registry  # noqa: E402
from pyscript_app.gpu.registry import matmul_entry  # noqa: E402

# TK is an override expression in matmul_tiles.wgsl, not one the registry lets callers set: this
# process lets the two forward entries take it, and always passes it (explicit_tk).
for _name in ("matmul_forward", "matmul_forward_v4"):
    _k = registry.KERNELS[_name]
    registry.KERNELS[_name] = registry.Kernel(_k.name, _k.file, _k.bindings, _k.uniform, _k.overrides + (("TK", 8),),
                                              _k.grid)


def explicit_tk(o: dict) -> dict:
    return {**o, "TK": o.get("TK", matmul_slice_depth(o["TM"], o["TN"], o.get("RPI", 8)))}

TILES = ((32, 32), (64, 64), (64, 128), (128, 64), (128, 128))


def workgroup_bytes(TM, TN, KG, TK) -> int:
    return 16 * 2 * KG * TK * ((TM // 4 + 1) + (TN // 4 + 1)) + 4 * TM


def configs(ex, max_invocations: int):
    """Every valid override set (matmul_tiles.wgsl's constraints, this device's limits)."""
    for TM, TN in TILES:
        for RPI in (8, 4):
            inv = (TM // RPI) * (TN // RPI)
            tk0 = matmul_slice_depth(TM, TN, RPI)
            for TK in (tk0, 2 * tk0):
                if TK * TM // 4 > 2 * inv or TK * TN // 4 > 2 * inv:
                    continue  # Staged holds two vec4 per operand per invocation
                for KG in (1, 2, 4):
                    if inv * KG > max_invocations or KG > 1 and TM // RPI > 256 // KG:
                        continue
                    slots = 2 * KG * TK * ((TM // 4 + 1) + (TN // 4 + 1))
                    if (KG - 1) * RPI * inv > slots:  # reduce_groups' scratch
                        continue
                    if workgroup_bytes(TM, TN, KG, TK) > ex.max_workgroup_bytes:
                        continue
                    o = {"TM": TM, "TN": TN}
                    if RPI != 8:
                        o["RPI"] = RPI
                    if KG != 1:
                        o["KGROUPS"] = KG
                    if TK != tk0:
                        o["TK"] = TK
                    yield o


def check(ex, N, K, M, overrides) -> float:
    """Max relative error of one dispatch against numpy."""
    r = np.random.default_rng(1)
    x = r.standard_normal((N, K), dtype=np.float32)
    w = r.standard_normal((K, M), dtype=np.float32)
    bx, bw, by = ex.upload(x.tobytes()), ex.upload(w.tobytes()), ex.alloc(4 * N * M)
    ex.dispatch(matmul_entry("matmul_forward", N, K, M, ex.adapter_info), [bx, bw, by],
                {"N": N, "K": K, "M": M, "accumulate": 0}, overrides=overrides)
    y = np.frombuffer(run_sync(ex.read(by, 4 * N * M)), np.float32).reshape(N, M)
    for b in (bx, bw, by):
        ex.release(b)
    ref = x.astype(np.float64) @ w
    return float(np.abs(y - ref).max() / np.abs(ref).max())


def main():
    engine, out_path = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    args = [a for a in sys.argv[3:] if not a.startswith("--")]
    models = (args[0] if args else "tiny,small,medium,large").split(",")
    gemm = 0 if smoke else int(sys.argv[sys.argv.index("--gemm") + 1]) if "--gemm" in sys.argv else 4096
    ex = open_device(engine)
    try:
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
        torch.backends.cuda.matmul.allow_tf32 = False
    except ImportError:
        torch, device = None, None
    max_inv = int(ex.device.limits.get("max-compute-invocations-per-workgroup", 256))
    bench.warm_up(ex, torch, device, 0.2 if smoke else 2.0)  # clocks up before anything is timed
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "adapter": ex.adapter_info, "max_invocations": max_inv,
           "shapes": []}
    for label, N, K, M in bench.gemm_shapes(["nano"] if smoke else models, gemm):
        reps = bench.gemm_repeats(2 * N * K * M)
        rule = matmul_forward_overrides("matmul_forward", N, K, M, ex.adapter_info, ex.max_workgroup_bytes)
        rows = []
        for o in [rule] + [c for c in configs(ex, max_inv) if c != rule]:
            err = check(ex, N, K, M, explicit_tk(o)) if N * K * M <= 2048 * 512 * 2048 else None
            ms = bench._time_matmul(ex, N, K, M, reps, explicit_tk(o))
            rows.append({"overrides": o, "ms": ms, "tflops": 2 * N * K * M / ms / 1e9, "rel_err": err,
                         "rule": o == rule})
        torch_ms = bench._time_torch_matmul(torch, device, N, K, M, reps)
        rule_ms = rows[0]["ms"]
        again = bench._time_matmul(ex, N, K, M, reps, rule)  # the rule once more: drift between the two
        rows.sort(key=lambda r: r["ms"])
        best = rows[0]
        out["shapes"].append({"shape": label, "N": N, "K": K, "M": M, "reps": reps, "torch_ms": torch_ms,
                              "rule": rule, "rule_ms": rule_ms, "rule_ms_again": again, "configs": rows})
        ratio = (lambda ms: torch_ms / ms) if torch_ms else (lambda ms: float("nan"))
        print(f"{label:<16} rule {rule} {rule_ms:.4f}/{again:.4f} ms ({ratio(rule_ms):.2f}x)  best {best['overrides']} "
              f"{best['ms']:.4f} ms ({ratio(best['ms']):.2f}x)  torch {torch_ms}", flush=True)
        for r in rows[:5]:
            print(f"    {r['overrides']} {r['ms']:.4f} ms err {r['rel_err']}", flush=True)
        bad = [r for r in rows if r["rel_err"] is not None and r["rel_err"] > 1e-4]
        if bad:
            print("    WRONG:", [(r["overrides"], r["rel_err"]) for r in bad], flush=True)
        Path(out_path).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
