"""Shader folders and host choices compared through the project's own dispatches (an experiment): for
each variant NAME=DIR[+HOST] (DIR a copy of shaders/; HOST: fwdkg2 = KGROUPS 2 on every plain or
residual forward product's 64 x 64 tiles; nokg = no sliced K at all (matmul_rules.matmul_forward_kgroups
off); dims = each matmul's N, K, M also passed as the pipeline constants FN, FK, FM, which DIR's
matmul shaders must declare; wide / tall = 64 x 128 / 128 x 64 tiles (TM x TN) instead of 128 x 128 for
forward products with fewer than 256 big tiles; the GEMM table's shapes too; square = no 64 x 128
forward tiles (matmul_rules.MATMUL_WIDE_* off); nor4 = no 4 x 4 outputs per invocation (matmul_rules.matmul_small_outputs
off); bwd64r4all = every backward product at 64 x 64 tiles (so at RPI 4); nobwdr4 = none in the backward products (matmul_rules.matmul_backward_small_outputs off); r4kg2 / r4kg4 =
sliced K (2 / 4 groups) on the plain and residual forward products that take 32 x 32 tiles at RPI 4,
r4kg2all = 2 groups on all of them at RPI 4; bwdwide = 64 x 128 instead of 128 x 128 in the backward
products too; fwd64wide / bwd64wide / all64wide = 64 x 128 instead of 64 x 64 in the forward / backward /
both products), GEMM 4096^3 and the large model's forward shapes, attention_rows_forward / _backward alone at
the medium and large shapes, and the medium and large training steps (B=8); every variant twice, in
alternation.

    python3 benchmarks/probes/variants_probe.py dawn OUT.json NAME=DIR[+HOST] ... [--smoke]"""
import dataclasses
import json
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))
from attention_probe_timing import attention_inputs, timed  # noqa: E402
from shader_dirs_probe import measure  # noqa: E402

from pyscript_app.gpu import attention_ops, matmul_rules, model_ops, registry  # noqa: E402
from pyscript_app.gpu.native import NativeExecutor, open_device  # noqa: E402

ATTN_SHAPES = {"medium": (8, 128, 256, 8), "large": (8, 256, 512, 8)}
_fwd = matmul_rules.matmul_forward_tiles      # all three reached through matmul_rules.matmul_forward_overrides
_kg = matmul_rules.matmul_forward_kgroups
_small = matmul_rules.matmul_small_outputs
_wide = (matmul_rules.MATMUL_WIDE_BELOW, matmul_rules.MATMUL_WIDE_FROM)
_bwd = model_ops.matmul_backward_tiles
_bwd_small = model_ops.matmul_backward_small_outputs
_fwd_over = model_ops.matmul_forward_overrides
_dispatch = NativeExecutor.dispatch
_kernels = dict(registry.KERNELS)
DIMS = (("FN", 0), ("FK", 0), ("FM", 0))


def _dims_dispatch(self, kernel, buffers, dims, overrides=None, **kw):
    if kernel.startswith("matmul_") and "direct" not in kernel:
        overrides = {**(overrides or {}), "FN": dims["N"], "FK": dims["K"], "FM": dims["M"]}
    return _dispatch(self, kernel, buffers, dims, overrides=overrides, **kw)


def host(choice: str) -> None:
    """Set this process's host choices for one variant (see the docstring)."""
    matmul_rules.matmul_forward_tiles, matmul_rules.matmul_forward_kgroups = _fwd, _kg
    matmul_rules.matmul_small_outputs = _small
    matmul_rules.MATMUL_WIDE_BELOW, matmul_rules.MATMUL_WIDE_FROM = _wide
    model_ops.matmul_backward_tiles = _bwd
    model_ops.matmul_backward_small_outputs, model_ops.matmul_forward_overrides = _bwd_small, _fwd_over
    NativeExecutor.dispatch = _dispatch
    registry.KERNELS.update(_kernels)
    if choice == "fwdkg2":
        matmul_rules.matmul_forward_kgroups = lambda N, M, tiles, *a: (
            {**tiles, "KGROUPS": 2} if dict(tiles) == {"TM": 64, "TN": 64} else dict(tiles))
    elif choice == "nor4":
        matmul_rules.matmul_small_outputs = lambda N, M, tiles, *a: dict(tiles)
    elif choice == "bwd64r4all":  # every backward product at 64 x 64, RPI 4 (the 128 x 128 ones too)
        model_ops.matmul_backward_tiles = lambda *a: {"TM": 64, "TN": 64}
    elif choice == "nobwdr4":
        model_ops.matmul_backward_small_outputs = lambda tiles, *a: dict(tiles)
    elif choice.startswith("r4kg"):  # r4kg2 / r4kg4: KGROUPS on RPI 4's 32 x 32 tiles; r4kg2all: on all RPI 4
        kg = int(choice[4])

        def fwd(kernel, *a):
            o = _fwd_over(kernel, *a)
            if o.get("RPI") == 4 and "rmsnorm" not in kernel and (choice.endswith("all") or o["TM"] == 32):
                o = {**o, "KGROUPS": kg}
            return o
        model_ops.matmul_forward_overrides = fwd
    elif choice == "nokg":
        matmul_rules.matmul_forward_kgroups = lambda N, M, tiles, *a: dict(tiles)
    elif choice == "dims":
        for name, k in _kernels.items():
            if name.startswith("matmul_") and "direct" not in name:
                registry.KERNELS[name] = dataclasses.replace(k, overrides=k.overrides + DIMS)
        NativeExecutor.dispatch = _dims_dispatch
    elif choice in ("wide", "tall"):
        rect = {"TM": 64, "TN": 128} if choice == "wide" else {"TM": 128, "TN": 64}
        matmul_rules.matmul_forward_tiles = lambda N, K, M: (
            dict(rect) if _fwd(N, K, M) == {"TM": 128, "TN": 128} and -(-N // 128) * -(-M // 128) < 256
            else _fwd(N, K, M))
    elif choice == "square":
        matmul_rules.MATMUL_WIDE_BELOW, matmul_rules.MATMUL_WIDE_FROM = 0, 1 << 30
    elif choice == "bwdwide":
        model_ops.matmul_backward_tiles = lambda *a: (
            {"TM": 64, "TN": 128} if _bwd(*a) == {"TM": 128, "TN": 128} else _bwd(*a))
    elif choice in ("fwd64wide", "bwd64wide", "all64wide"):
        sq, rect = {"TM": 64, "TN": 64}, {"TM": 64, "TN": 128}
        if choice != "bwd64wide":
            matmul_rules.matmul_forward_tiles = lambda N, K, M: dict(rect) if _fwd(N, K, M) == sq else _fwd(N, K, M)
        if choice != "fwd64wide":
            model_ops.matmul_backward_tiles = lambda *a: dict(rect) if _bwd(*a) == sq else _bwd(*a)
    elif choice:
        raise SystemExit(f"unknown host choice {choice!r}")


def attention_alone(ex, smoke: bool) -> dict:
    out = {}
    for shape, (B, T, C, H) in ({"nano": (2, 16, 64, 2)} if smoke else ATTN_SHAPES).items():
        D = C // H
        qkv, dy, y, lse, dqkv, dims = attention_inputs(ex, B, T, C, H)
        fo, bo = attention_ops.rows_forward_overrides(D, T), attention_ops.rows_backward_overrides(D, T)
        for _ in range(3):
            timed(ex, "attention_rows_forward", [qkv, y, lse], dims, fo)
        f = timed(ex, "attention_rows_forward", [qkv, y, lse], dims, fo)
        for _ in range(3):
            timed(ex, "attention_rows_backward", [dy, qkv, y, lse, dqkv], dims, bo)
        b = timed(ex, "attention_rows_backward", [dy, qkv, y, lse, dqkv], dims, bo)
        out[shape] = {"forward_ms": round(f, 4), "backward_ms": round(b, 4)}
    return out


def main():
    engine, out_path = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    variants = [a.split("=", 1) for a in sys.argv[3:] if "=" in a]
    res = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "variants": dict(variants), "runs": []}
    for _ in range(2):
        for name, spec in variants:
            folder, _, choice = spec.partition("+")
            host(choice)
            ex = open_device(engine, shader_dir=folder)
            attn = attention_alone(ex, smoke)
            print(name, "attention", attn, flush=True)
            row = measure(ex, name, smoke)
            row["attention"] = attn
            res["runs"].append(row)
    host("")
    json.dump(res, open(out_path, "w"), indent=1)


if __name__ == "__main__":
    main()
