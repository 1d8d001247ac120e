"""Attention backward with split rows (an experiment): attention_rows_backward with each query row
(DQ_SPLIT) and key row (KV_SPLIT) spread over several invocations, which holds a fraction of the row
registers per invocation and puts more rows in flight. Times the dispatch alone at the medium and
large shapes (B=8, full context), then the medium and large training steps with each variant's
overrides (attention_ops.rows_backward_overrides patched in this process).

    python3 benchmarks/probes/attention_split_probe.py dawn|wgpu-native OUT.json [--smoke]

The split rows (the DQ_SPLIT and KV_SPLIT overrides) were reverted after this probe: run it at commit
b1b3455, where shaders/attention_rows_backward.wgsl has them. Result:
benchmarks/results/attention-split-probe-h200-dawn-2026-12-03.json (every split slower at `large`)."""
import json
import sys
import time


sys.path.insert(0, ".")
sys.path.insert(0, "benchmarks/probes")
from attention_probe_timing import attention_inputs, timed  # noqa: E402
from pyscript_app.gpu import attention_ops, step_bench  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402

SHAPES = {"medium": (8, 128, 256, 8), "large": (8, 256, 512, 8)}
VARIANTS = {
    "base": {},
    "dq2_kt8": {"DQ_SPLIT": 2, "KT": 8},
    "dq4_kt8": {"DQ_SPLIT": 4, "KT": 8},
    "dq4_kt16": {"DQ_SPLIT": 4, "KT": 16},
    "kv4": {"KV_SPLIT": 4},
    "dq4_kt8_kv4": {"DQ_SPLIT": 4, "KT": 8, "KV_SPLIT": 4},
    "dq4_kt8_kv4_rows128": {"DQ_SPLIT": 4, "KT": 8, "KV_SPLIT": 4, "ROWS": 128},
    "dq4_kt8_kv4_qt16": {"DQ_SPLIT": 4, "KT": 8, "KV_SPLIT": 4, "QT": 16},
    "dq8_kt4_kv8": {"DQ_SPLIT": 8, "KT": 4, "KV_SPLIT": 8},
    "dq4_kt4_kv4": {"DQ_SPLIT": 4, "KT": 4, "KV_SPLIT": 4},
}
_base_overrides = attention_ops.rows_backward_overrides


def main():
    engine, out_path = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    shapes = {"nano": (2, 16, 64, 2)} if smoke else SHAPES
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "alone_ms": {}, "step_ms": {}}
    ex = open_device(engine)
    out["adapter"] = ex.adapter_info
    for shape, (B, T, C, H) in shapes.items():
        D = C // H
        qkv, dy, y, lse, dqkv, dims = attention_inputs(ex, B, T, C, H)
        ex.dispatch("attention_rows_forward", [qkv, y, lse], dims,
                    overrides=attention_ops.rows_forward_overrides(D, T))
        ex.submit()
        for name, extra in VARIANTS.items():
            over = {**_base_overrides(D, T), **extra}
            bufs = [dy, qkv, y, lse, dqkv]
            for _ in range(3):
                timed(ex, "attention_rows_backward", bufs, dims, over)
            ms = timed(ex, "attention_rows_backward", bufs, dims, over)
            out["alone_ms"].setdefault(shape, {})[name] = round(ms, 4)
            print(shape, name, round(ms, 4), flush=True)
    for model in ["nano"] if smoke else ["medium", "large"]:
        for name, extra in list(VARIANTS.items()) + [("base (again)", {})]:
            attention_ops.rows_backward_overrides = lambda D, T, extra=extra: {**_base_overrides(D, T), **extra}
            t = run_sync(step_bench.time_step(ex, model, batch=8, repeats=10, runs=3))
            out["step_ms"].setdefault(model, {})[name] = round(t.ms_per_step, 4)
            print(model, name, round(t.ms_per_step, 4), flush=True)
    attention_ops.rows_backward_overrides = _base_overrides
    json.dump(out, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main()
