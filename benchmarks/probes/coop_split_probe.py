"""Question: can the matrix units compute the fp32 step's products as accurately as f32 arithmetic, and
faster than the f32 kernels, by splitting each f32 operand into two f16 parts?

x = hi + lo with hi = x rounded to f16's 11 significant bits and lo = f16(x - hi) holds x to about
2^-22 of itself while lo stays in f16's normal range; x @ w ~= hi @ whi + hi @ wlo + lo @ whi (lo @ wlo is ~2^-22 of the sum: dropped),
each product on the f16 subgroup matrices with f32 accumulation. That is three matrix multiplies per
tile instead of one, on operands staged twice (hi and lo). The variant is matmul_coop.wgsl rewritten
by split_source(): load_a/load_b keep f32, put_a/put_b store hi into a_sh/b_sh and lo into a_lo/b_lo,
and every multiply-accumulate becomes the three.

Three parts, on a device opened for mixed precision (Dawn with f16 subgroup matrices):
1. accuracy: C = A @ B in each layout (x @ W, dy @ W^T, x^T @ dy) at operand scales 1, 1e-2 and 1e-4,
   against float64: the split kernel, the plain matmul_coop (f16 operands) and numpy's float32 matmul;
   and whole steps: the mixed step with the split kernel against the f32 reference (the gate model's
   tensors, relative L2), beside the fp32 GPU step's own distance to it;
2. speed: each product of `large`'s step, and 4096^3, on the split kernel's blocks that fit the
   workgroup memory (hi and lo double the staging), beside matmul_coop on the rules' block, interleaved;
3. whole `large` steps, interleaved twice: fp32, mixed, and mixed on the split kernel (the blocks capped
   to what fits).

    python3 benchmarks/probes/coop_split_probe.py OUT.json [large]
"""
import json
import re
import shutil
import sys
import time
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import coop_product_probe as cpp  # noqa: E402
from pyscript_app.config import ModelConfig  # noqa: E402
from pyscript_app.gpu import coop_rules, mixed_check, model_ops, native, registry, step_bench  # noqa: E402
from pyscript_app.gpu.bench import _run_plan  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402

# blocks (WY, WX, RT, CT, BK) whose doubled staging fits 48 KiB
SPLIT_BLOCKS = [(2, 2, 4, 4, 16), (2, 2, 4, 2, 16), (2, 2, 2, 4, 16), (2, 2, 2, 2, 32), (2, 2, 2, 2, 16),
                (2, 2, 1, 1, 64), (2, 2, 1, 2, 32), (4, 2, 2, 2, 16)]
GEMM_SIDE = 4096  # the square product timed beside the model's
SPLIT_BIG = {"WY": 2, "WX": 2, "RT": 4, "CT": 4, "BK": 16}


def split_source(src: str) -> str:
    """matmul_coop.wgsl (its include expanded) with every operand held as f16 hi + lo and three
    multiply-accumulates per tile."""
    def sub(pattern, repl, count=None):
        nonlocal src
        new, n = re.subn(pattern, repl, src)
        assert n and (count is None or n == count), (pattern, n)
        src = new
    sub(r"(var<workgroup> b_sh: array<f16, 2u \* B_SIZE>;)",
        r"\1\nvar<workgroup> a_lo: array<f16, 2u * A_SIZE>;\nvar<workgroup> b_lo: array<f16, 2u * B_SIZE>;", 1)
    sub(r"(fn load_[ab]\(v: u32, (?:row0|col0): u32, k0: u32\)) -> vec4<f16>", r"\1 -> vec4<f32>", 2)
    sub(r"return vec4<f16>\(x \* p\.(a|b)_scale\);", r"return x * p.\1_scale;", 2)
    sub(r": vec4<f16>;", ": vec4<f32>;", 16)
    for o in "ab":
        sub(rf"fn put_{o}\(v: u32, buf: u32, x: vec4<f16>\) \{{\n(  let i = [^\n]*\n)  {o}_sh\[i\] = x\.x; [^\n]*\n\}}",
            rf"fn put_{o}(v: u32, buf: u32, x32: vec4<f32>) {{\n\1"
            # hi rounded to f16's 11 significant bits by integer arithmetic on the f32 bits: written as
            # x32 - f32(f16(x32)), the driver's compiler folded lo to zero (an H100 run, 2026-12-07)
            rf"  let hi32 = bitcast<vec4<f32>>((bitcast<vec4<u32>>(x32) + vec4<u32>(0x1000u)) & vec4<u32>(0xffffe000u));\n"
            rf"  let x = vec4<f16>(hi32);\n  let xl = vec4<f16>(x32 - hi32);\n"
            rf"  {o}_sh[i] = x.x; {o}_sh[i + 1u] = x.y; {o}_sh[i + 2u] = x.z; {o}_sh[i + 3u] = x.w;\n"
            rf"  {o}_lo[i] = xl.x; {o}_lo[i + 1u] = xl.y; {o}_lo[i + 2u] = xl.z; {o}_lo[i + 3u] = xl.w;\n}}", 1)
    # left_lo / right_lo: the same loads from the lo buffers
    for fn, arr in (("left", "a"), ("right", "b")):
        m = re.search(rf"fn {fn}\(.*?\n\}}\n", src, re.S)
        lo = m.group(0).replace(f"fn {fn}(", f"fn {fn}_lo(").replace(f"&{arr}_sh", f"&{arr}_lo")
        src = src[:m.end()] + "\n" + lo + src[m.end():]
    sub(r"let b0 = right\(buf, sc, 0u, kk\);", "let b0 = right(buf, sc, 0u, kk); let bl0 = right_lo(buf, sc, 0u, kk);", 1)
    sub(r"var b1 = R\(\); var b2 = R\(\); var b3 = R\(\);",
        "var b1 = R(); var b2 = R(); var b3 = R(); var bl1 = R(); var bl2 = R(); var bl3 = R();", 1)
    sub(r"\{ b(\d) = right\(buf, sc, (\du), kk\); \}", r"{ b\1 = right(buf, sc, \2, kk); bl\1 = right_lo(buf, sc, \2, kk); }", 3)
    sub(r"let a(\d) = left\(buf, sr, (\du), kk\);", r"let a\1 = left(buf, sr, \2, kk); let al\1 = left_lo(buf, sr, \2, kk);", 4)
    sub(r"c(\d)(\d) = subgroupMatrixMultiplyAccumulate\(a\1, b\2, c\1\2\);",
        r"c\1\2 = subgroupMatrixMultiplyAccumulate(al\1, b\2, c\1\2); "
        r"c\1\2 = subgroupMatrixMultiplyAccumulate(a\1, bl\2, c\1\2); "
        r"c\1\2 = subgroupMatrixMultiplyAccumulate(a\1, b\2, c\1\2);", 16)
    return src


def split_folder() -> str:
    """A copy of shaders/ whose matmul_coop.wgsl is the split variant."""
    folder = Path(tempfile.mkdtemp(prefix="coop_split_"))
    for f in registry.shader_dir().glob("*.wgsl"):
        shutil.copy(f, folder / f.name)
    (folder / "matmul_coop.wgsl").write_text(split_source(registry.shader_source("matmul_coop.wgsl")))
    return str(folder)


def use_shaders(ex, folder) -> None:
    """Compile from `folder` from now on (pipelines already made keep their code)."""
    ex.shader_dir = folder
    ex._modules.clear()
    ex._pipelines.clear()


def split_bytes(block, a_t, b_t) -> int:
    staged = coop_rules.coop_workgroup_bytes(block, a_t, b_t) - 4 * 256 * block["WY"] * block["WX"]
    return 2 * staged + 4 * 256 * block["WY"] * block["WX"]


def product_once(ex, A, B, a_t, b_t, block) -> np.ndarray:
    N, K = (A.shape[1], A.shape[0]) if a_t else A.shape
    M = B.shape[0] if b_t else B.shape[1]
    a, b = ex.upload(np.ascontiguousarray(A, np.float32).tobytes()), ex.upload(np.ascontiguousarray(B, np.float32).tobytes())
    y, unused = ex.alloc(4 * N * M), ex.alloc(256)
    ex.dispatch("matmul_coop", [a, b, a, y, unused], coop_rules.coop_values(N, K, M, bool(a_t), bool(b_t)),
                overrides={**block, "A_T": a_t, "B_T": b_t})
    out = np.frombuffer(run_sync(ex.read(y)), np.float32).reshape(N, M).copy()
    for buf in (a, b, y, unused):
        ex.release(buf)
    return out


def accuracy(ex, plain_dir, split_dir) -> list:
    rows = []
    rng = np.random.default_rng(0)
    N, K, M = 192, 2048, 160
    for a_t, b_t in ((0, 0), (0, 1), (1, 0)):
        for scale in (1.0, 1e-2, 1e-4):
            x = (scale * rng.standard_normal((N, K))).astype(np.float32)
            w = rng.standard_normal((K, M)).astype(np.float32)
            ref = x.astype(np.float64) @ w.astype(np.float64)
            A, B = (x.T if a_t else x), (w.T if b_t else w)
            row = {"layout": f"A_T={a_t} B_T={b_t}", "N": N, "K": K, "M": M, "x_scale": scale}
            for kind, folder in (("plain", plain_dir), ("split", split_dir)):
                use_shaders(ex, folder)
                got = product_once(ex, A, B, a_t, b_t, coop_rules.COOP_SMALL)
                row[kind] = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
            row["numpy_f32"] = float(np.linalg.norm((x @ w).astype(np.float64) - ref) / np.linalg.norm(ref))
            print(row, flush=True)
            rows.append(row)
    return rows


def step_distance(ex, precision: str, cfg: ModelConfig, B: int) -> dict:
    """Relative L2 of each tensor (logits, losses, gradients) of one GPU step to the f32 reference
    (the mixed gate's step and inputs: gpu/mixed_check.py)."""
    got, flat, idx, targets, ops = mixed_check.gpu_step(ex, cfg, B, 0, precision)
    ref = mixed_check.reference_tensors(cfg, flat, idx, targets)
    d = {k: float(np.linalg.norm(got[k] - ref[k]) / max(np.linalg.norm(ref[k]), 1e-30)) for k in ref}
    return {"max": max(d.values()), "tensors": d, "attention": "matrix units" if ops.coop_attention else "other"}


PLAIN_RULES = (model_ops.coop_block, model_ops.coop_workgroup_bytes)


def split_rules(on: bool) -> None:
    """model_ops' block rules for the split kernel (on) or as committed: 128 x 128 blocks on 16-deep
    slices, and its workgroup memory counted doubled, so what does not fit falls back to 64 x 64."""
    block, nbytes = PLAIN_RULES

    def split_block(N, K, M, ksplit=1, batches=1):
        b = block(N, K, M, ksplit, batches)
        return dict(SPLIT_BIG) if b == coop_rules.COOP_BIG else b
    model_ops.coop_block, model_ops.coop_workgroup_bytes = (split_block, split_bytes) if on else PLAIN_RULES


def products_table(ex, plain_dir, split_dir, model_name) -> list:
    n = GEMM_SIDE
    table = cpp.products(model_name) + [{"name": f"{n}^3", "N": n, "K": n, "M": n, "a_t": 0, "b_t": 0,
                                         "epi": "store", "count": 1}]
    rng = np.random.default_rng(1)
    built = []
    for p in table:
        for kind, folder, blocks in (("plain", plain_dir, None), ("split", split_dir, SPLIT_BLOCKS)):
            use_shaders(ex, folder)
            if blocks is None:
                ksplit = coop_rules.coop_dw_split(*p["fwd"]) if "fwd" in p else 1
                blk = coop_rules.coop_block(p["N"], p["K"], p["M"], ksplit)
                cpp.BLOCKS, cpp.SPLITS = [tuple(blk[k] for k in ("WY", "WX", "RT", "CT", "BK"))], (ksplit,)
            else:
                cpp.SPLITS = (1, 2, 4)
                cpp.BLOCKS = [b for b in blocks if split_bytes(cpp.block_dict(b), p["a_t"], p["b_t"]) <= ex.max_workgroup_bytes]
            b = cpp.product_plans(ex, p, rng)
            for row, _ in b["plans"]:
                row["kind"] = kind
            built.append((p, b))
    for b in built:  # warm
        for row, plan in b[1]["plans"][:1]:
            if plan is not None:
                _run_plan(ex, plan, b[1]["bufs"]["y"], 1)
    for _ in range(3):
        for p, b in built:
            for row, plan in b["plans"]:
                if plan is not None:
                    row["runs_ms"].append(_run_plan(ex, plan, b["bufs"]["y"], 1) / b["reps"])
    out = []
    for p, b in built:
        flops = 2 * p["N"] * p["K"] * p["M"]
        for row, plan in b["plans"]:
            if plan is not None and row["runs_ms"]:
                ms = float(np.median(row["runs_ms"]))
                row.update(ms=round(ms, 5), tflops=round(flops / ms / 1e9, 2))
            out.append({"product": p["name"], "N": p["N"], "K": p["K"], "M": p["M"], **row})
        for buf in b["bufs"].values():
            ex.release(buf)
    for p in table:
        rows = [r for r in out if r["product"] == p["name"] and "ms" in r]
        for kind in ("plain", "split"):
            best = min((r for r in rows if r["kind"] == kind), key=lambda r: r["ms"], default=None)
            if best:
                print(f"{p['name']:<12} {kind:<6} {best['block']} ks{best['ksplit']} {best['ms']:.4f} ms "
                      f"{best['tflops']:.1f} TFLOP/s", flush=True)
    return out


def main() -> int:
    out_path = sys.argv[1]
    model_name = sys.argv[2] if len(sys.argv) > 2 else "large"
    ex = native.open_device("dawn", mixed=True)
    plain_dir, split_dir = str(registry.shader_dir()), split_folder()
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "adapter": ex.adapter_info, "command": " ".join(sys.argv)}
    print(ex.adapter_info.get("device"), flush=True)
    out["accuracy"] = accuracy(ex, plain_dir, split_dir)
    json.dump(out, open(out_path, "w"), indent=1)
    out["step_distance_to_f32"] = {}
    for cfg, B in ((mixed_check.CHECK_MODEL, mixed_check.CHECK_BATCH),
                   (mixed_check.CHECK_LONG_MODEL, mixed_check.CHECK_LONG_BATCH)):
        for kind, folder, precision in (("fp32", plain_dir, "fp32"), ("mixed", plain_dir, "mixed"),
                                        ("mixed split", split_dir, "mixed")):
            use_shaders(ex, folder)
            split_rules(kind == "mixed split")
            r = step_distance(ex, precision, cfg, B)
            out["step_distance_to_f32"][f"T={cfg.block_size} {kind}"] = r
            print(f"T={cfg.block_size} {kind}: max {r['max']:.2e} ({r['attention']})", flush=True)
    split_rules(False)
    json.dump(out, open(out_path, "w"), indent=1)
    out["products"] = products_table(ex, plain_dir, split_dir, model_name)
    json.dump(out, open(out_path, "w"), indent=1)
    times = {}
    for _ in range(2):
        for kind, folder, precision in (("fp32", plain_dir, "fp32"), ("mixed", plain_dir, "mixed"),
                                        ("mixed split", split_dir, "mixed")):
            use_shaders(ex, folder)
            split_rules(kind == "mixed split")
            t = run_sync(step_bench.time_step(ex, model_name, batch=8, repeats=10, runs=3, precision=precision))
            times.setdefault(kind, []).append(t.ms_per_step)
            print(f"{model_name} {kind}: {t.ms_per_step:.3f} ms", flush=True)
    split_rules(False)
    out["steps"] = {model_name: times}
    json.dump(out, open(out_path, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
