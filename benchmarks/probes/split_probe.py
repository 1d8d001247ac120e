"""Split-dw probe (an experiment): training-step time under other matmul_dw_split policies and other
per-kernel overrides (Executor.override_table), then the per-kernel profile of the large step.
Each configuration runs ROUNDS times, every other round in reverse order (the H200's step time
drifted by ~10 % over a few minutes in the first runs).

    python3 benchmarks/probes/split_probe.py dawn|wgpu-native OUT.json

Policies replace gpu/model_ops' matmul_dw_split (SPLIT per backward product from its N, K, M):
none = never split (the previous kernels), balance = dw parts no longer than dx's sum, chunk =
N / max(256, N / 4) parts, +dx = dx's sum cut too (matmul_rules.matmul_dx_split) where a norm consumes it.
(The first two result files also have allN: N / part >= 256 with at most N parts, since dropped.) Steps: step_bench.time_step (B=8, full context, median of 3 runs of 10)."""
import json
import sys

from pyscript_app.gpu import matmul_rules, model_ops, step_bench
from pyscript_app.gpu.executor import run_sync
from pyscript_app.gpu.native import open_device


def _chunk_dw(N, K, M, info):
    return max(1, min(8, N // max(256, N // 4)))


ONE = lambda N, K, M, info: 1  # noqa: E731


def _balance(N, K, M, info):  # dw cut until no longer than dx's sum (the first rule)
    s = 1
    while s < 8 and N // (2 * s) >= max(M, 256):
        s *= 2
    return s


# name -> (dw policy, dx policy)
POLICIES = {"none": (ONE, ONE), "balance": (_balance, ONE), "chunk": (_chunk_dw, ONE),
            "chunk+dx (registry)": (matmul_rules.matmul_dw_split, matmul_rules.matmul_dx_split)}
OVERRIDES = {
    "rmsnorm_bwd DG_COLS4": {"rmsnorm_backward": {"DG_COLS": 4}},
    "rmsnorm_bwd DG_COLS2": {"rmsnorm_backward": {"DG_COLS": 2}},
    "rmsnorm_bwd DG_COLS1": {"rmsnorm_backward": {"DG_COLS": 1}},
}
ROUNDS = 2  # every configuration again in reverse order: the machine drifts by several percent


def step_ms(ex, model):
    t = run_sync(step_bench.time_step(ex, model, batch=8, repeats=10, runs=3))
    return round(t.ms_per_step, 4), t.dispatches_per_step


def main():
    ex = open_device(sys.argv[1])
    out = {"adapter": ex.adapter_info, "policies": {}, "overrides": {}}
    step_ms(ex, "large")  # warm the clocks
    configs = [("policy", n) for n in POLICIES] + [("override", n) for n in OVERRIDES]
    for r in range(ROUNDS):
        for kind, name in (configs if r % 2 == 0 else configs[::-1]):
            dw, dx = POLICIES[name] if kind == "policy" else (matmul_rules.matmul_dw_split, matmul_rules.matmul_dx_split)
            model_ops.matmul_dw_split, model_ops.matmul_dx_split = dw, dx
            ex.override_table = OVERRIDES[name] if kind == "override" else {}
            for model in ("medium", "large"):
                ms = step_ms(ex, model)
                out["policies" if kind == "policy" else "overrides"].setdefault(f"{model} {name}", []).append(ms)
                print(r, model, name, ms, flush=True)
    model_ops.matmul_dw_split, model_ops.matmul_dx_split = matmul_rules.matmul_dw_split, matmul_rules.matmul_dx_split
    ex.override_table = {}
    be, _, _ = run_sync(step_bench.make_backend(ex, "large", 8))
    shares, whole = run_sync(step_bench.profile_step(ex, be, reps=10))
    out["profile_large"] = {"step_ms": whole, "per_kernel": [s.to_json() for s in shares]}
    print("large profile", round(whole, 3), flush=True)
    for s in shares:
        print("  ", s.to_json(), flush=True)
    json.dump(out, open(sys.argv[2], "w"), indent=1)


if __name__ == "__main__":
    main()
