"""Question: which matmul_coop block, and how many k-runs (KSPLIT), should each product of the
mixed-precision step get?

Every distinct product of a preset's mixed step (its shape, operand layouts and epilogue; batch 8, full
context) is timed alone on each candidate block, and the dw products also cut into 2 and 4 k-runs with
the add_parts that sums them: a plan of about TARGET_MS of dispatches, the median of three timed
replays. Each candidate's output is checked against the first candidate's (the same f16 operands,
only the order of the f32 sums differs). Every pipeline is compiled before the GPU is warmed up and the
candidates are timed in interleaved rounds: timed one product at a time, with compiles in between, the
GPU idled and the first candidates of a new layout or epilogue ran up to 4x slow. Then whole steps,
timed as the bench does, twice each: the rules, variants of their constants, and every product on its
fastest candidate (`best`, keyed by shape and k-runs as model_ops asks).

    python3 benchmarks/probes/coop_product_probe.py OUT.json [large,medium] [--validate]

(--validate, with WGPU_BACKEND_TYPE=Null: Dawn's Null adapter, which compiles every pipeline and runs
nothing, for checking the probe itself where no GPU has subgroup matrices.)

Blocks are (WY, WX subgroups; RT, CT 16 x 16 tiles each; BK)."""
import itertools
import json
import math
import sys
import time

import numpy as np

from pyscript_app.config import preset
from pyscript_app.gpu import coop_rules, model_ops, native, step_bench
from pyscript_app.gpu.bench import _run_plan
from pyscript_app.gpu.executor import run_sync
from pyscript_app.gpu.registry import COOP_EPILOGUES

BLOCKS = [(2, 2, 4, 4, 32), (2, 2, 4, 4, 16), (2, 2, 4, 2, 32), (2, 2, 2, 4, 32), (2, 2, 2, 2, 32), (2, 2, 2, 2, 64),
          (2, 2, 2, 2, 16), (2, 1, 2, 4, 32), (1, 2, 4, 2, 32), (4, 2, 2, 2, 32), (2, 4, 2, 2, 32), (4, 4, 2, 2, 16),
          (4, 2, 2, 4, 16), (2, 2, 1, 1, 64), (2, 2, 1, 2, 64), (1, 1, 4, 4, 16)]
SPLITS = (1, 2, 4)
TARGET_MS = 8.0  # each timed plan about this long at 40 TFLOP/s
WARM_S = 1.0     # GPU work before the first timed round (the clocks ramp up)


def products(model: str, batch: int = 8) -> list[dict]:
    """The mixed step's products (model_ops with precision "mixed"): forward, dx and dw per weight."""
    cfg = preset(model)
    N, C, V, L = batch * cfg.block_size, cfg.n_embd, cfg.vocab_size, cfg.n_layer
    out = []
    for w, K, M, fwd, dx, count in (("qkv", C, 3 * C, "store", "store", L), ("proj", C, C, "residual", "store", L),
                                    ("fc", C, 4 * C, "relu", "store", L), ("fc_proj", 4 * C, C, "residual", "relu_mask", L),
                                    ("lm_head", C, V, "store", "store", 1)):
        out.append({"name": f"{w}.fwd", "N": N, "K": K, "M": M, "a_t": 0, "b_t": 0, "epi": fwd, "count": count})
        out.append({"name": f"{w}.dx", "N": N, "K": M, "M": K, "a_t": 0, "b_t": 1, "epi": dx, "count": count})
        out.append({"name": f"{w}.dw", "N": K, "K": N, "M": M, "a_t": 1, "b_t": 0, "epi": "store", "count": count,
                    "fwd": (N, K, M)})
    return out


def block_dict(b) -> dict:
    return dict(zip(("WY", "WX", "RT", "CT", "BK"), b))


def product_plans(ex, p: dict, rng) -> dict:
    """Buffers and one plan per candidate (compiling its pipeline) for product p: REPS dispatches each,
    with the add_parts of a split after each."""
    N, K, M = p["N"], p["K"], p["M"]
    bufs = {"a": ex.upload(rng.standard_normal(N * K, dtype=np.float32).tobytes()),
            "b": ex.upload(rng.standard_normal(K * M, dtype=np.float32).tobytes()),
            "e": ex.upload(rng.standard_normal(N * M, dtype=np.float32).tobytes()),
            "y": ex.alloc(4 * N * M), "parts": ex.alloc(4 * N * M * (max(SPLITS) - 1)), "unused": ex.alloc(256)}
    reps = max(5, min(400, math.ceil(TARGET_MS * 1e-3 * 40e12 / (2 * N * K * M))))
    plans = []
    for blk, ksplit in itertools.product(BLOCKS, SPLITS if "fwd" in p else (1,)):
        bd = block_dict(blk)
        if not coop_rules.coop_block_ok(bd) or coop_rules.coop_workgroup_bytes(bd, p["a_t"], p["b_t"]) > ex.max_workgroup_bytes:
            continue
        row = {"block": list(blk), "ksplit": ksplit, "runs_ms": []}
        try:
            ex.begin_plan()
            for _ in range(reps):
                ex.dispatch("matmul_coop", [bufs["a"], bufs["b"], bufs["e"], bufs["y"],
                                            bufs["parts"] if ksplit > 1 else bufs["unused"]],
                            coop_rules.coop_values(N, K, M, p["a_t"], p["b_t"], part_stride=N * M),
                            overrides={**bd, "A_T": p["a_t"], "B_T": p["b_t"], "EPI": COOP_EPILOGUES[p["epi"]],
                                       "KSPLIT": ksplit})
                if ksplit > 1:
                    ex.dispatch("add_parts", [bufs["parts"], bufs["y"]], {"n": N * M, "count": ksplit - 1, "stride": N * M})
            plans.append((row, ex.end_plan()))
        except Exception as ex_:
            row["error"] = f"{type(ex_).__name__}: {ex_}"[:300]
            if ex._plan is not None:  # failed while capturing
                ex.end_plan()
            plans.append((row, None))
    return {"bufs": bufs, "reps": reps, "plans": plans}


def time_products(ex, table: list[dict], rng, rounds: int = 3) -> None:
    """Every product's candidates into p["rows"]: all pipelines compiled first, the GPU kept busy for
    WARM_S, then `rounds` rounds each timing every candidate once (interleaved, so clock drift spreads
    over all of them); the median round. Outputs checked against each product's first candidate."""
    built = [product_plans(ex, p, rng) for p in table]
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < WARM_S:
        for b in built:
            for row, plan in b["plans"][:1]:
                _run_plan(ex, plan, b["bufs"]["y"], 1)
    for _ in range(rounds):
        for b in built:
            for row, plan in b["plans"]:
                if plan is not None:
                    row["runs_ms"].append(_run_plan(ex, plan, b["bufs"]["y"], 1) / b["reps"])
    for p, b in zip(table, built):
        flops, ref = 2 * p["N"] * p["K"] * p["M"], None
        for row, plan in b["plans"]:
            if plan is not None:
                _run_plan(ex, plan, b["bufs"]["y"], 1)
                out = np.frombuffer(run_sync(ex.read(b["bufs"]["y"])), dtype=np.float32)
                ref = out.copy() if ref is None else ref
                ms = float(np.median(row["runs_ms"]))
                row.update(ms=round(ms, 5), tflops=round(flops / ms / 1e9, 2),
                           err=float(np.abs(out - ref).max() / max(1e-30, np.abs(ref).max())))
        p["rows"] = [row for row, _ in b["plans"]]
        for buf in b["bufs"].values():
            ex.release(buf)


def best_rules(table: list[dict]):
    """(coop_block, coop_dw_split) replacements: every product on its fastest checked candidate; products
    sharing model_ops's key (N, K, M, k-runs) get the candidate fastest over all of them."""
    ok = lambda r: "ms" in r and r["err"] < 1e-3  # noqa: E731
    dw_split = {}
    for p in table:
        if "fwd" in p:
            checked = [r for r in p["rows"] if ok(r)]
            dw_split[tuple(p["fwd"])] = min(checked, key=lambda r: r["ms"])["ksplit"] if checked else 1
    by_key: dict = {}
    for p in table:
        ks = dw_split[tuple(p["fwd"])] if "fwd" in p else 1
        by_key.setdefault((p["N"], p["K"], p["M"], ks), []).append(p)
    choice = {}
    for key, ps in by_key.items():
        totals: dict = {}
        for p in ps:
            for r in p["rows"]:
                if ok(r) and r["ksplit"] == key[3]:
                    totals.setdefault(tuple(r["block"]), []).append(r["ms"] * p["count"])
        full = {b: sum(v) for b, v in totals.items() if len(v) == len(ps)}
        if full:  # else (nothing checked out) the rules' own
            choice[key] = min(full, key=full.get)

    def block(N, K, M, ksplit=1):
        return block_dict(choice[(N, K, M, ksplit)]) if (N, K, M, ksplit) in choice else coop_rules.coop_block(N, K, M, ksplit)

    def split(N, K, M):
        return dw_split.get((N, K, M), 1)
    return block, split, {f"{k}": list(v) for k, v in choice.items()}, {f"{k}": v for k, v in dw_split.items()}


def step_ms(ex, model: str) -> dict:
    t = run_sync(step_bench.time_step(ex, model, batch=8, repeats=10, runs=3, precision="mixed"))
    return {"ms": t.ms_per_step, "runs_ms": list(t.runs_ms), "dispatches": t.dispatches_per_step}


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    models = (args[1] if len(args) > 1 else "large,medium").split(",")
    if "--validate" in sys.argv:
        native.coop_config_listed = lambda configs: True  # Null lists no configuration
        fits = {"WY": 2, "WX": 2, "RT": 1, "CT": 1, "BK": 16}  # Null grants 16 KiB of workgroup memory
        coop_rules.coop_block = model_ops.coop_block = lambda N, K, M, ksplit=1: dict(fits)
    ex = native.open_device("dawn", mixed=True)
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv), "adapter": ex.adapter_info,
           "blocks": "(WY, WX, RT, CT, BK)", "models": {}}
    rng = np.random.default_rng(0)
    run_sync(step_bench.time_step(ex, models[0], batch=8, repeats=10, runs=1, precision="mixed"))  # clocks up
    for model in models:
        table = products(model)
        time_products(ex, table, rng)
        for p in table:
            timed = [r for r in p["rows"] if "ms" in r]
            rules_blk = coop_rules.coop_block(p["N"], p["K"], p["M"],
                                              coop_rules.coop_dw_split(*p["fwd"]) if "fwd" in p else 1)
            fastest = min(timed, key=lambda r: r["ms"]) if timed else p["rows"][:2]
            rule_row = next((r for r in timed if r["ksplit"] == 1 and tuple(r["block"]) ==
                             tuple(rules_blk[k] for k in ("WY", "WX", "RT", "CT", "BK"))), None)
            print(model, p["name"], (p["N"], p["K"], p["M"]), "fastest", fastest, "rules' block unsplit",
                  rule_row and (rule_row["block"], rule_row["tflops"]), flush=True)
        block, split, choice, dw_split = best_rules(table)
        entry = {"products": table, "best_blocks": choice, "best_dw_split": dw_split}
        rule_block, rule_split = model_ops.coop_block, model_ops.coop_dw_split
        defaults = {k: getattr(coop_rules, k) for k in ("COOP_BIG_WORKGROUPS", "COOP_DW_MAX_SPLIT")}
        variants = [("rules", {}), ("no k-runs", {"COOP_DW_MAX_SPLIT": 1}),
                    ("128x128 from 128 blocks, no k-runs", {"COOP_BIG_WORKGROUPS": 128, "COOP_DW_MAX_SPLIT": 1}),
                    ("128x128 from 192 blocks, no k-runs", {"COOP_BIG_WORKGROUPS": 192, "COOP_DW_MAX_SPLIT": 1}),
                    ("128x128 from 128 blocks", {"COOP_BIG_WORKGROUPS": 128}), ("best", None)]
        for name, consts in variants + [(n + " (again)", c) for n, c in variants]:
            for k, v in {**defaults, **(consts or {})}.items():
                setattr(coop_rules, k, v)
            model_ops.coop_block, model_ops.coop_dw_split = (block, split) if consts is None else (rule_block, rule_split)
            try:
                entry[name] = step_ms(ex, model)
            except Exception as e:
                entry[name] = {"error": f"{type(e).__name__}: {e}"[:500]}
            print(model, name, entry[name], flush=True)
        for k, v in defaults.items():
            setattr(coop_rules, k, v)
        model_ops.coop_block, model_ops.coop_dw_split = rule_block, rule_split
        out["models"][model] = entry
        json.dump(out, open(sys.argv[1], "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
