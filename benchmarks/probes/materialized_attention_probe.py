"""Question: does the attention with materialised scores (gpu/materialized_attention.py) compute what its
numpy statements say, on the matrix units ("coop") and in f32 ("f32"), and is each step faster with it
than with the blocks kernels?

First MaterializedAttentionOps alone, forward and backward, of each kind at several shapes (ragged
contexts among them) against its statement (reference/mixed.py's attention pair for "coop",
reference/ops_attention.py for "f32"; relative L2 per output: y, lse, dq, dk, dv) and against the f32
reference. Then whole steps of each preset, timed as the bench does (gpu/step_bench.py: batch 8, full
context): the mixed step with ENABLED["coop"] on and off, the fp32 step with ENABLED["f32"] on and
off, in interleaved rounds (twice each). Needs a device opened for mixed precision (Dawn with f16
subgroup matrices).

    python3 benchmarks/probes/materialized_attention_probe.py OUT.json [large,medium]
"""
import json
import sys

import numpy as np

sys.path.insert(0, ".")
from pyscript_app.gpu import materialized_attention, native, step_bench  # noqa: E402
from pyscript_app.gpu.materialized_attention import MaterializedAttentionOps  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402
from pyscript_app.reference import ops_attention  # noqa: E402
from pyscript_app.reference.mixed import attention_backward_mixed, attention_forward_mixed  # noqa: E402

SHAPES = ((2, 64, 64, 2), (1, 68, 48, 3), (3, 20, 32, 4), (8, 128, 256, 8), (8, 256, 512, 8))  # B, T, C, H
GRAD_SCALE = 1024.0


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def check(ex, B: int, T: int, C: int, H: int, products: str) -> dict:
    rng = np.random.default_rng(T)
    qkv = rng.standard_normal((B, T, 3 * C)).astype(np.float32)
    dy = (1e-3 * rng.standard_normal((B, T, C))).astype(np.float32)

    def read(buf, shape):
        return np.frombuffer(run_sync(ex.read(buf, 4 * int(np.prod(shape)))), np.float32).reshape(shape).copy()

    g = GRAD_SCALE if products == "coop" else 1.0
    att = MaterializedAttentionOps(ex, B, T, C, H, g, products)
    bq, bdy = ex.upload(qkv.tobytes()), ex.upload(dy.tobytes())
    by, blse, bd = ex.alloc(B * T * C * 4), ex.alloc(B * H * T * 4), ex.alloc(qkv.nbytes)
    att.forward(bq, by, blse)
    att.backward(bdy, bq, by, blse, bd)
    y, lse, d = read(by, (B, T, C)), read(blse, (B, H, T)), read(bd, (B, T, 3 * C))
    fy, fl = ops_attention.attention_forward(qkv, H)
    fd = ops_attention.attention_backward(dy, qkv, fy, fl, H)
    if products == "coop":
        ry, rl = attention_forward_mixed(qkv, H)
        rd = attention_backward_mixed(dy, qkv, ry, rl, H, g)
    else:
        ry, rl, rd = fy, fl, fd
    part = {"dq": slice(0, C), "dk": slice(C, 2 * C), "dv": slice(2 * C, 3 * C)}
    row = {"products": products, "shape": {"B": B, "T": T, "C": C, "H": H}, "y": rel(y, ry), "lse": rel(lse, rl),
           **{k: rel(d[..., s], rd[..., s]) for k, s in part.items()},
           "f32_y": rel(y, fy), "f32_dqkv": rel(d, fd), "mixed_reference_vs_f32_dqkv": rel(rd, fd)}
    for buf in (bq, bdy, by, blse, bd, att.scores, att.dscores, att.unused):
        if buf is not None:
            ex.release(buf)
    return row


def main() -> int:
    out_path = sys.argv[1]
    models = (sys.argv[2] if len(sys.argv) > 2 else "large,medium").split(",")
    ex = native.open_device("dawn", mixed=True)
    out = {"adapter": ex.adapter_info, "command": " ".join(sys.argv), "checks": [], "steps": {}}
    print(ex.adapter_info.get("device"), flush=True)
    for products in materialized_attention.PRODUCTS:
        for shape in SHAPES:
            try:
                row = check(ex, *shape, products)
            except Exception as e:  # noqa: BLE001 - a probe reports every shape
                row = {"products": products, "shape": shape, "error": f"{type(e).__name__}: {e}"[:400]}
            print(row, flush=True)
            out["checks"].append(row)
    json.dump(out, open(out_path, "w"), indent=1)
    for name in models:
        times = {}
        for _ in range(2):
            for precision, products in (("mixed", "coop"), ("fp32", "f32")):
                for on in (True, False):
                    materialized_attention.ENABLED = {**dict.fromkeys(materialized_attention.PRODUCTS, False),
                                                      products: on}
                    t = run_sync(step_bench.time_step(ex, name, batch=8, repeats=10, runs=3, precision=precision))
                    key = f"{precision} {'materialised' if on else 'blocks kernels'}"
                    times.setdefault(key, []).append(t.ms_per_step)
                    print(f"{name} {key} {t.ms_per_step:.3f} ms, {t.dispatches_per_step} dispatches", flush=True)
        out["steps"][name] = times
        json.dump(out, open(out_path, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
