"""The parity cases of the matmul family (matmul.wgsl, matmul_vec4.wgsl, matmul_direct.wgsl,
split_reduce.wgsl): every entry, its fused epilogues (GPT-2's bias ones too), split and tile variants,
and GPT-2's tied head, against the numpy reference. Part of gpu/parity_cases.py's table (see its
docstring); numpy-only, never in the browser.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..reference.ops import matmul_backward, matmul_forward, rmsnorm_forward
from ..reference.ops_gpt2 import gelu_forward, linear_forward, tied_head_backward, tied_head_forward
from .parity_case_builder import CaseBuilder, ParityCase, _f64, _rng
from .matmul_rules import matmul_slice_depth, matmul_workgroup_bytes
from .registry import WEBGPU_DEFAULT_WORKGROUP_BYTES


def _tile_suffix(tiles: Mapping[str, int] | None) -> str:
    """A case name's tile part: "_tile64x64", plus "_r4" (RPI 4) and "_k4" (KGROUPS 4) when set."""
    if not tiles:
        return ""
    rpi, kg = tiles.get("RPI", 8), tiles.get("KGROUPS", 1)
    return f"_tile{tiles['TM']}x{tiles['TN']}" + (f"_r{rpi}" if rpi != 8 else "") + (f"_k{kg}" if kg != 1 else "")


def _wg_bytes(tiles: Mapping[str, int] | None) -> int:
    """ParityCase.workgroup_bytes for these overrides: 0 when they fit WebGPU's default limit."""
    t = dict(tiles or {"TM": 64, "TN": 64})
    need = matmul_workgroup_bytes(t["TM"], t["TN"], t.get("KGROUPS", 1), t.get("RPI", 8))
    return need if need > WEBGPU_DEFAULT_WORKGROUP_BYTES else 0


# --- matmul.wgsl: atol 1e-5 + rtol 1e-4 (f32 sums in another order; float64 reference) -----------
def _matmul(N: int, K: int, M: int, variant: str = ""):
    """The three plain entries; variant: the suffix of twins with the same interface ("_v4": vec4 loads,
    K, M multiples of 4; "_direct": matmul_direct.wgsl's barrier-free entries, no tile overrides)."""
    def make(b: CaseBuilder) -> None:
        r = _rng(N, K, M)
        x, w, dy = (r.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
        dims = {"N": N, "K": K, "M": M, "accumulate": 0}
        b.input("x", x), b.input("w", w), b.input("dy", dy)
        b.output("y", N * M), b.output("dx", N * K), b.output("dw", K * M)
        flops = 2 * N * K * M
        b.dispatch("matmul_forward" + variant, ["x", "w", "y"], dims, flops=flops)
        b.dispatch("matmul_backward_dx" + variant, ["dy", "w", "dx"], dims, flops=flops)
        b.dispatch("matmul_backward_dw" + variant, ["x", "dy", "dw"], dims, flops=flops)
        x64, w64, dy64 = _f64(x, w, dy)
        ref_dx, ref_dw = matmul_backward(dy64, x64, w64)
        b.expect_close("y", matmul_forward(x64, w64), 1e-5, 1e-4, "y")
        b.expect_close("dx", ref_dx, 1e-5, 1e-4, "dx")
        b.expect_close("dw", ref_dw, 1e-5, 1e-4, "dw")
    kernels = tuple(k + variant for k in ("matmul_forward", "matmul_backward_dx", "matmul_backward_dw"))
    return ParityCase(f"matmul_{N}x{K}x{M}{variant}", kernels, make)


def _matmul_accumulate(N: int, K: int, M: int):
    def make(b: CaseBuilder) -> None:
        r = _rng(N, K, M, 1)
        x, dy, prior = (r.standard_normal(s).astype(np.float32) for s in ((N, K), (N, M), (K, M)))
        b.input("x", x), b.input("dy", dy), b.input("dw", prior)
        b.dispatch("matmul_backward_dw", ["x", "dy", "dw"], {"N": N, "K": K, "M": M, "accumulate": 1}, flops=2 * N * K * M)
        x64, dy64, prior64 = _f64(x, dy, prior)
        b.expect_close("dw", prior64 + x64.T @ dy64, 1e-5, 1e-4, "dw += x^T dy")
    return ParityCase(f"matmul_accumulate_{N}x{K}x{M}", ("matmul_backward_dw",), make)


def _matmul_fused(N: int, K: int, M: int, tiles: Mapping[str, int] | None = None, variant: str = ""):
    """The fused entries: the residual epilogue, and dx + dw in one dispatch (plain and relu-masked);
    variant: twins' suffix, as in _matmul."""
    def make(b: CaseBuilder) -> None:
        r = _rng(N, K, M, 2)
        x, w, dy, res = (r.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M), (N, M)))
        x[:, ::3] = np.maximum(x[:, ::3], 0.0)  # exact zeros: relu'(0) is taken as 0
        dims = {"N": N, "K": K, "M": M, "accumulate": 0}
        for name, arr in (("x", x), ("w", w), ("dy", dy), ("res", res)):
            b.input(name, arr)
        for name, n in (("y_res", N * M), ("dx", N * K), ("dw", K * M), ("dx_relu", N * K),
                        ("dw_relu", K * M)):
            b.output(name, n)
        flops = 2 * N * K * M
        b.dispatch("matmul_forward_residual" + variant, ["x", "w", "res", "y_res"], dims, overrides=tiles, flops=flops)
        b.dispatch("matmul_backward" + variant, ["x", "w", "dy", "dx", "dw"], dims, overrides=tiles, flops=2 * flops)
        b.dispatch("matmul_backward_relu" + variant, ["x", "w", "dy", "dx_relu", "dw_relu"], dims, overrides=tiles,
                   flops=2 * flops)
        x64, w64, dy64, res64 = _f64(x, w, dy, res)
        y = matmul_forward(x64, w64)
        ref_dx, ref_dw = matmul_backward(dy64, x64, w64)
        b.expect_close("y_res", res64 + y, 1e-5, 1e-4, "res + x @ w")
        b.expect_close("dx", ref_dx, 1e-5, 1e-4, "dx")
        b.expect_close("dw", ref_dw, 1e-5, 1e-4, "dw")
        b.expect_close("dx_relu", np.where(x64 > 0, ref_dx, 0.0), 1e-5, 1e-4, "dx * (x > 0)")
        b.expect_close("dw_relu", ref_dw, 1e-5, 1e-4, "dw (relu variant)")
    kernels = tuple(k + variant for k in ("matmul_forward_residual", "matmul_backward", "matmul_backward_relu"))
    return ParityCase(f"matmul_fused_{N}x{K}x{M}{_tile_suffix(tiles)}{variant}", kernels, make, _wg_bytes(tiles))


def _matmul_split(N: int, K: int, M: int, split: int, tiles: Mapping[str, int] | None = None, variant: str = ""):
    """The split backward entries: dx, and dw's sum over N in `split` parts, part 0 into dw and part
    s >= 1 into the parts buffer at (s - 1) * K * M; part s sums positions [s * chunk, (s + 1) * chunk)
    with chunk = ceil(N / split) rounded up to the k-slice TK (matmul_stores.wgsl split_dw_tile)."""
    t = dict(tiles or {"TM": 64, "TN": 64})
    tk = matmul_slice_depth(t["TM"], t["TN"], t.get("RPI", 8))
    chunk = -(-(-(-N // split)) // tk) * tk

    def make(b: CaseBuilder) -> None:
        r = _rng(N, K, M, 5)
        x, w, dy = (r.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
        x[:, ::3] = np.maximum(x[:, ::3], 0.0)  # exact zeros: relu'(0) is taken as 0
        dims = {"N": N, "K": K, "M": M, "accumulate": 0, "part_stride": K * M}
        for name, arr in (("x", x), ("w", w), ("dy", dy)):
            b.input(name, arr)
        x64, w64, dy64 = _f64(x, w, dy)
        ref_dx = matmul_backward(dy64, x64, w64)[0]
        parts = [x64[i:i + chunk].T @ dy64[i:i + chunk] for i in range(0, split * chunk, chunk)]
        for kernel, tag, dx_ref in (("matmul_backward_split", "", ref_dx),
                                    ("matmul_backward_relu_split", "_relu", np.where(x64 > 0, ref_dx, 0.0))):
            b.output("dx" + tag, N * K), b.output("dw" + tag, K * M), b.output("parts" + tag, (split - 1) * K * M)
            b.dispatch(kernel + variant, ["x", "w", "dy", "dx" + tag, "dw" + tag, "parts" + tag], dims,
                       overrides={**t, "SPLIT": split}, flops=4 * N * K * M)
            b.expect_close("dx" + tag, dx_ref, 1e-5, 1e-4, f"{kernel}: dx")
            b.expect_close("dw" + tag, parts[0], 1e-5, 1e-4, f"{kernel}: dw = part 0")
            b.expect_close("parts" + tag, np.concatenate([p.ravel() for p in parts[1:]]), 1e-5, 1e-4,
                           f"{kernel}: parts 1..{split - 1}")
    kernels = ("matmul_backward_split" + variant, "matmul_backward_relu_split" + variant)
    return ParityCase(f"matmul_split{split}_{N}x{K}x{M}{_tile_suffix(tiles)}{variant}", kernels, make, _wg_bytes(tiles))


def _matmul_dx_split(N: int, K: int, M: int, dx_split: int, split: int, variant: str = ""):
    """matmul_backward_split with dx's sum over M cut too: dx part s at s * N * K of the dx binding
    (sums over chunks of M, TK multiples), dw in `split` parts as in _matmul_split."""
    tk = matmul_slice_depth(64, 64)  # the default tiles
    cx, cw = -(-(-(-M // dx_split)) // tk) * tk, -(-(-(-N // split)) // tk) * tk

    def make(b: CaseBuilder) -> None:
        r = _rng(N, K, M, 6)
        x, w, dy = (r.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
        for name, arr in (("x", x), ("w", w), ("dy", dy)):
            b.input(name, arr)
        b.output("dx", dx_split * N * K), b.output("dw", K * M), b.output("parts", max(1, (split - 1) * K * M))
        b.dispatch("matmul_backward_split" + variant, ["x", "w", "dy", "dx", "dw", "parts"],
                   {"N": N, "K": K, "M": M, "accumulate": 0, "part_stride": K * M},
                   overrides={"SPLIT": split, "DX_SPLIT": dx_split}, flops=4 * N * K * M)
        x64, w64, dy64 = _f64(x, w, dy)
        dx_parts = [dy64[:, i:i + cx] @ w64[:, i:i + cx].T for i in range(0, dx_split * cx, cx)]
        b.expect_close("dx", np.concatenate([p.ravel() for p in dx_parts]), 1e-5, 1e-4, "dx parts")
        b.expect_close("dw", x64[:cw].T @ dy64[:cw], 1e-5, 1e-4, "dw = part 0")
    return ParityCase(f"matmul_dxsplit{dx_split}_{N}x{K}x{M}{variant}", ("matmul_backward_split" + variant,), make)


def _add_parts(n: int, count: int, stride: int):
    def make(b: CaseBuilder) -> None:
        r = _rng(n, count, stride)
        out, parts = r.standard_normal(n + 5).astype(np.float32), r.standard_normal(count * stride).astype(np.float32)
        b.input("out", out), b.input("parts", parts)
        b.dispatch("add_parts", ["parts", "out"], {"n": n, "count": count, "stride": stride})
        want = out.copy()
        for s in range(count):  # float32 adds in the kernel's order: bit-exact
            want[:n] = want[:n] + parts[s * stride:s * stride + n]
        b.expect_bits("out", want, "out[:n] + parts, in part order; the rest untouched")
    return ParityCase(f"parts_added_{n}x{count}", ("add_parts",), make)  # not "add_": the add case's prefix


def _matmul_rmsnorm(N: int, K: int, M: int, tiles: Mapping[str, int] | None = None, eps: float = 1e-5,
                    variant: str = ""):
    """rmsnorm folded into the matmul: y = rmsnorm(x) @ w (and relu of it), plus the xn and rstd it
    stores for the backward (rmsnorm tolerances for those); variant: twins' suffix, as in _matmul."""
    def make(b: CaseBuilder) -> None:
        r = _rng(N, K, M, 4)
        x, w = (r.standard_normal((N, K)) * 3).astype(np.float32), r.standard_normal((K, M)).astype(np.float32)
        g = r.standard_normal(K).astype(np.float32)
        b.input("x", x), b.input("w", w), b.input("g", g)
        dims = {"N": N, "K": K, "M": M, "eps": eps}
        ref_xn, ref_rstd = rmsnorm_forward(*_f64(x, g), eps)
        ref_y = matmul_forward(ref_xn, w.astype(np.float64))
        for kernel, tag, ref in (("matmul_forward_rmsnorm" + variant, "", ref_y),
                                 ("matmul_forward_rmsnorm_relu" + variant, "_relu", np.maximum(ref_y, 0.0))):
            b.output("y" + tag, N * M), b.output("xn" + tag, N * K), b.output("rstd" + tag, N)
            b.dispatch(kernel, ["x", "w", "g", "y" + tag, "xn" + tag, "rstd" + tag], dims, overrides=tiles,
                       flops=2 * N * K * M)
            b.expect_close("y" + tag, ref, 1e-5, 1e-4, f"{kernel}: y")
            b.expect_close("xn" + tag, ref_xn, 1e-5, 1e-5, f"{kernel}: xn")
            b.expect_close("rstd" + tag, ref_rstd, 0, 1e-5, f"{kernel}: rstd")
    return ParityCase(f"matmul_rmsnorm_{N}x{K}x{M}{_tile_suffix(tiles)}{variant}",
                      ("matmul_forward_rmsnorm" + variant, "matmul_forward_rmsnorm_relu" + variant), make,
                      _wg_bytes(tiles))


def _matmul_tiles(N: int, K: int, M: int, tiles: Mapping[str, int]):
    """The three plain entries at a non-default tile size."""
    def make(b: CaseBuilder) -> None:
        r = _rng(N, K, M, 3)
        x, w, dy = (r.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
        dims = {"N": N, "K": K, "M": M, "accumulate": 0}
        b.input("x", x), b.input("w", w), b.input("dy", dy)
        b.output("y", N * M), b.output("dx", N * K), b.output("dw", K * M)
        flops = 2 * N * K * M
        b.dispatch("matmul_forward", ["x", "w", "y"], dims, overrides=tiles, flops=flops)
        b.dispatch("matmul_backward_dx", ["dy", "w", "dx"], dims, overrides=tiles, flops=flops)
        b.dispatch("matmul_backward_dw", ["x", "dy", "dw"], dims, overrides=tiles, flops=flops)
        x64, w64, dy64 = _f64(x, w, dy)
        ref_dx, ref_dw = matmul_backward(dy64, x64, w64)
        b.expect_close("y", matmul_forward(x64, w64), 1e-5, 1e-4, "y")
        b.expect_close("dx", ref_dx, 1e-5, 1e-4, "dx")
        b.expect_close("dw", ref_dw, 1e-5, 1e-4, "dw")
    kernels = ("matmul_forward", "matmul_backward_dx", "matmul_backward_dw")
    return ParityCase(f"matmul_{N}x{K}x{M}_tile{tiles['TM']}x{tiles['TN']}", kernels, make)


# --- GPT-2's linear layers: the bias in the epilogue, and the tied head (reference/ops_gpt2.py) --------
def _matmul_bias(N: int, K: int, M: int, tiles: Mapping[str, int] | None = None, variant: str = ""):
    """y = x @ w + b, gelu(x @ w + b), res + (x @ w + b) (matmul.wgsl's bias entries); variant: twins' suffix."""
    def make(b: CaseBuilder) -> None:
        r = _rng(N, K, M, 7)
        x, w, res = (r.standard_normal(s).astype(np.float32) for s in ((N, K), (K, M), (N, M)))
        x *= 0.5  # pre-activations of a few units: the GELU's curved part
        bias = r.standard_normal(M).astype(np.float32)
        dims = {"N": N, "K": K, "M": M, "accumulate": 0}
        for name, arr in (("x", x), ("w", w), ("b", bias), ("res", res)):
            b.input(name, arr)
        lin = linear_forward(*_f64(x, w, bias))
        for kernel, inputs, ref in (("matmul_forward_bias", ["x", "w", "b"], lin),
                                    ("matmul_forward_bias_gelu", ["x", "w", "b"], gelu_forward(lin)),
                                    ("matmul_forward_bias_residual", ["x", "w", "b", "res"], res.astype(np.float64) + lin)):
            b.output("y_" + kernel, N * M)
            b.dispatch(kernel + variant, inputs + ["y_" + kernel], dims, overrides=tiles, flops=2 * N * K * M)
            b.expect_close("y_" + kernel, ref, 1e-5, 1e-4, kernel + variant)
    kernels = tuple(k + variant for k in ("matmul_forward_bias", "matmul_forward_bias_gelu", "matmul_forward_bias_residual"))
    return ParityCase(f"matmul_bias_{N}x{K}x{M}{_tile_suffix(tiles)}{variant}", kernels, make, _wg_bytes(tiles))


def _tied_head(N: int, C: int, V: int, Vp: int):
    """GPT-2's head tied to wte (Vp,C), V <= Vp real rows, through existing entries with K = V, M = C:
    logits = x @ wte[:V].T (matmul_backward_dx), dx = dlogits @ wte[:V] (matmul_forward) and
    dwte[:V] += dlogits.T @ x (matmul_backward_dw, accumulate 1). Padding rows are NaN: never read or written."""
    def make(b: CaseBuilder) -> None:
        r = _rng(N, C, V, Vp)
        x, dlogits = r.standard_normal((N, C)).astype(np.float32), r.standard_normal((N, V)).astype(np.float32)
        wte, prior = r.standard_normal((Vp, C)).astype(np.float32), r.standard_normal((Vp, C)).astype(np.float32)
        wte[V:], prior[V:] = np.nan, np.nan
        b.input("x", x), b.input("wte", wte), b.input("dlogits", dlogits), b.input("dwte", prior)
        b.output("logits", N * V), b.output("dx", N * C)
        dims, flops = {"N": N, "K": V, "M": C, "accumulate": 0}, 2 * N * V * C
        b.dispatch("matmul_backward_dx", ["x", "wte", "logits"], dims, flops=flops)
        b.dispatch("matmul_forward", ["dlogits", "wte", "dx"], dims, flops=flops)
        b.dispatch("matmul_backward_dw", ["dlogits", "x", "dwte"], {**dims, "accumulate": 1}, flops=flops)
        x64, wte64 = x.astype(np.float64), np.nan_to_num(wte.astype(np.float64))
        ref_dx, ref_dwte = tied_head_backward(dlogits.astype(np.float64), x64, wte64)
        b.expect_close("logits", tied_head_forward(x64, wte64, V), 1e-5, 1e-4, "logits = x @ wte[:V].T")
        b.expect_close("dx", ref_dx, 1e-5, 1e-4, "dx = dlogits @ wte[:V]")
        b.expect_close("dwte", prior[:V] + ref_dwte[:V], 1e-5, 1e-4, "dwte[:V] += dlogits.T @ x")
        b.expect_bits("dwte", prior[V:], "padding rows of dwte untouched", offset=V * C)
    return ParityCase(f"matmul_tied_head_{N}x{C}_V{V}_Vp{Vp}", ("matmul_backward_dx", "matmul_forward", "matmul_backward_dw"),
                      make)
