"""Split-dw probe (an experiment): training-step time under other matmul_dw_split policies and other
per-kernel overrides (Executor.override_table), then the per-kernel profile of the large step.

    python3 benchmarks/probes/split_probe.py dawn|wgpu-native OUT.json

Policies replace gpu/model_ops' matmul_dw_split (SPLIT per backward product from its N, K, M):
none = never split (the previous kernels), balance = the registry's rule, allN = N / part >= 256
with at most N parts. Steps: step_bench.time_step (B=8, full context, median of 3 runs of 10)."""
import json
import sys

from pyscript_app.gpu import model_ops, registry, step_bench
from pyscript_app.gpu.executor import run_sync
from pyscript_app.gpu.native import open_device


def _all(n):
    def policy(N, K, M, info):
        s = 1
        while s < n and N // (2 * s) >= 256:
            s *= 2
        return s
    return policy


POLICIES = {"none": lambda N, K, M, info: 1, "balance": registry.matmul_dw_split,
            "all2": _all(2), "all4": _all(4), "all8": _all(8)}
OVERRIDES = {
    "rmsnorm_bwd WG128": {"rmsnorm_backward": {"WG": 128}},
    "rmsnorm_bwd WG256": {"rmsnorm_backward": {"WG": 256}},
    "adamw PER_INV4": {"adamw_step": {"WG": 256, "PER_INV": 4}},
    "adamw PER_INV16": {"adamw_step": {"WG": 256, "PER_INV": 16}},
    "gradnorm WG64": {"grad_norm_partial": {"WG": 64}},
}


def step_ms(ex, model):
    t = run_sync(step_bench.time_step(ex, model, batch=8, repeats=10, runs=3))
    return round(t.ms_per_step, 4), t.dispatches_per_step


def main():
    ex = open_device(sys.argv[1])
    out = {"adapter": ex.adapter_info, "policies": {}, "overrides": {}}
    step_ms(ex, "large")  # warm the clocks
    for name, policy in POLICIES.items():
        model_ops.matmul_dw_split = policy
        for model in ("medium", "large"):
            out["policies"][f"{model} {name}"] = step_ms(ex, model)
            print(model, name, out["policies"][f"{model} {name}"], flush=True)
    model_ops.matmul_dw_split = registry.matmul_dw_split
    for name, table in OVERRIDES.items():
        ex.override_table = table
        for model in ("medium", "large"):
            out["overrides"][f"{model} {name}"] = step_ms(ex, model)
            print(model, name, out["overrides"][f"{model} {name}"], flush=True)
    ex.override_table = {}
    for model in ("medium", "large"):
        out["overrides"][f"{model} (none)"] = step_ms(ex, model)
        print(model, "(none)", out["overrides"][f"{model} (none)"], flush=True)
    be, _, _ = run_sync(step_bench.make_backend(ex, "large", 8))
    shares, whole = run_sync(step_bench.profile_step(ex, be, reps=10))
    out["profile_large"] = {"step_ms": whole, "per_kernel": [s.to_json() for s in shares]}
    print("large profile", round(whole, 3), flush=True)
    for s in shares:
        print("  ", s.to_json(), flush=True)
    json.dump(out, open(sys.argv[2], "w"), indent=1)


if __name__ == "__main__":
    main()
