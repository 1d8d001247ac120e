"""The parity cases of GPT-2's own kernels (reference/ops_gpt2.py): layernorm.wgsl, elementwise.wgsl's
GELU, bias.wgsl's bias gradient, and attention.wgsl's batched KV-cache fill for a prefill. (The bias
epilogues of the matmul and the tied head are in gpu/parity_cases_matmul.py.) Part of
gpu/parity_cases.py's table (see its docstring); numpy-only, never in the browser.
"""

from __future__ import annotations

import numpy as np

from ..reference.ops_attention import attention_forward
from ..reference.ops_gpt2 import gelu_backward, gelu_forward, layernorm_backward, layernorm_forward, linear_forward
from .attention_ops import tile_rows
from .parity_case_builder import CaseBuilder, ParityCase, _f64, _rng


# --- layernorm.wgsl: y, rstd rtol 1e-5, mean atol 1e-6 + rtol 1e-5; dx, dw, db atol 1e-5 + rtol 1e-4 -
def _layernorm(N: int, C: int, accumulate: int, eps: float = 1e-5, offset: float = 0.0):
    def make(b: CaseBuilder) -> None:
        r = _rng(N, C, accumulate, 11)
        x = (r.standard_normal((N, C)) * 3 + offset).astype(np.float32)
        w, bias = (1 + 0.5 * r.standard_normal(C)).astype(np.float32), r.standard_normal(C).astype(np.float32)
        dy, prior_dx = r.standard_normal((N, C)).astype(np.float32), r.standard_normal((N, C)).astype(np.float32)
        dims = {"N": N, "C": C, "eps": eps, "accumulate": accumulate, "dy_parts": 1}
        for name, arr in (("x", x), ("w", w), ("b", bias), ("dy", dy), ("dx", prior_dx)):
            b.input(name, arr)
        for name, n in (("y", N * C), ("mean", N), ("rstd", N), ("dw", C), ("db", C)):
            b.output(name, n)
        b.dispatch("layernorm_forward", ["x", "w", "b", "y", "mean", "rstd"], dims)
        b.dispatch("layernorm_backward", ["dy", "x", "w", "mean", "rstd", "dx", "dw", "db"], dims)
        x64, w64, b64, dy64 = _f64(x, w, bias, dy)
        ref_y, ref_mean, ref_rstd = layernorm_forward(x64, w64, b64, eps)
        ref_dx, ref_dw, ref_db = layernorm_backward(dy64, x64, w64, ref_mean, ref_rstd)
        if accumulate:  # dx accumulates, dw and db are always overwritten
            ref_dx = ref_dx + prior_dx
        b.expect_close("y", ref_y, 1e-5, 1e-5, "y")
        b.expect_close("mean", ref_mean, 1e-6, 1e-5, "mean")
        b.expect_close("rstd", ref_rstd, 0, 1e-5, "rstd")
        b.expect_close("dx", ref_dx, 1e-5, 1e-4, "dx")
        b.expect_close("dw", ref_dw, 1e-5, 1e-4, "dw")
        b.expect_close("db", ref_db, 1e-5, 1e-4, "db")
    return ParityCase(f"layernorm_{N}x{C}{'_accumulate' if accumulate else ''}",
                      ("layernorm_forward", "layernorm_backward"), make)


# --- elementwise.wgsl's GELU (tanh approximation): atol 1e-6 + rtol 1e-5 -----------------------------
def _gelu(n: int):
    """Random inputs plus the edges: 0, tiny, the curved part, and |x| where tanh's exponentials or x**3
    overflow f32 (the kernel must give y = max(x, 0), dx = dy or 0 there, never NaN)."""
    def make(b: CaseBuilder) -> None:
        r = _rng(n, 12)
        x = (r.standard_normal(n) * 3).astype(np.float32)
        edges = np.array([0.0, 1e-30, -1e-30, 2.7, -2.7, 9.0, -9.0, 30.0, -30.0, 1e4, -1e4, 1e13, -1e13,
                          1e20, -1e20, 3e38, -3e38], np.float32)
        x[:edges.size] = edges
        dy = r.standard_normal(n).astype(np.float32)
        b.input("x", x), b.input("dy", dy), b.output("y", n), b.output("dx", n)
        b.dispatch("gelu_forward", ["x", "y"], {"n": n})
        b.dispatch("gelu_backward", ["dy", "x", "dx"], {"n": n})
        x64, dy64 = _f64(x, dy)
        with np.errstate(over="ignore", invalid="ignore"):
            ref_y, ref_dx = gelu_forward(x64), gelu_backward(dy64, x64)
        huge = np.abs(x64) > 1e30  # float64's x**3 overflows too: the limits
        ref_y[huge], ref_dx[huge] = np.maximum(x64[huge], 0.0), np.where(x64[huge] > 0, dy64[huge], 0.0)
        b.expect_close("y", ref_y, 1e-6, 1e-5, "gelu y")
        b.expect_close("dx", ref_dx, 1e-6, 1e-5, "gelu dx")
    return ParityCase(f"gelu_{n}", ("gelu_forward", "gelu_backward"), make)


# --- bias.wgsl: db = dy.sum(axis=0), atol 1e-5 + rtol 1e-5 -----------------------------------------
def _bias_backward(N: int, M: int):
    def make(b: CaseBuilder) -> None:
        r = _rng(N, M, 13)
        dy, prior = r.standard_normal((N, M)).astype(np.float32), r.standard_normal(M + 5).astype(np.float32)
        b.input("dy", dy), b.output("db", M + 5), b.input("db_acc", prior)
        b.dispatch("bias_backward", ["dy", "db"], {"N": N, "M": M, "accumulate": 0})
        b.dispatch("bias_backward", ["dy", "db_acc"], {"N": N, "M": M, "accumulate": 1})
        ref = dy.astype(np.float64).sum(axis=0)
        b.expect_close("db", ref, 1e-5, 1e-5, "db = dy.sum(0)")
        b.expect_bits("db", np.full(5, np.nan, np.float32), "past M: untouched", offset=M)
        b.expect_close("db_acc", prior[:M] + ref, 1e-5, 1e-5, "db += dy.sum(0)")
    return ParityCase(f"bias_backward_{N}x{M}", ("bias_backward",), make)


# --- attention.wgsl's KV-cache fill (bit-exact copies), then a decode step continuing from it --------
def _attention_kv_fill(C: int, H: int, Tmax: int, T: int):
    """attention_kv_fill writes positions 0..T-1 of both caches at once (a prefill's keys and values);
    attention_decode at pos = T then attends over them: the forward's row T."""
    def make(b: CaseBuilder) -> None:
        qkv = (_rng(C, H, Tmax, T).standard_normal((T + 1, 3 * C)) * 1.5).astype(np.float32)
        D = C // H
        over = {"D": D, "BQ": tile_rows(D)}
        b.input("qkv", qkv[:T]), b.input("row", qkv[T]), b.output("y", C)
        b.output("k_cache", H * Tmax * D, fill=-1.0), b.output("v_cache", H * Tmax * D, fill=-1.0)
        b.dispatch("attention_kv_fill", ["qkv", "k_cache", "v_cache"], {"T": T, "C": C, "H": H, "Tmax": Tmax},
                   overrides=over)
        b.dispatch("attention_decode", ["row", "k_cache", "v_cache", "y"], {"C": C, "H": H, "Tmax": Tmax, "pos": T},
                   overrides=over, flops=4 * H * (T + 1) * D)
        for name, col in (("k_cache", C), ("v_cache", 2 * C)):
            ref = np.full((H, Tmax, D), -1.0, np.float32)
            ref[:, :T + 1] = qkv[:, col:col + C].reshape(T + 1, H, D).transpose(1, 0, 2)
            b.expect_bits(name, ref, f"{name} (H, Tmax, D): positions 0..{T} written, the rest untouched")
        ref_y, _ = attention_forward(qkv[None].astype(np.float64), H)
        b.expect_close("y", ref_y[0, T], 1e-5, 1e-4, f"decode at pos {T} after the fill")
    return ParityCase(f"attention_kv_fill_C{C}_H{H}_T{T}", ("attention_kv_fill", "attention_decode"), make)


# --- matvec.wgsl's one-row linear layers (decoding): atol 1e-5 + rtol 1e-4 (the matmuls') ----------------
def _matvec_forward(K: int, M: int, overrides: dict[str, int] | None = None, variant: str = ""):
    """y (1,M) = x @ w + b, gelu(x @ w + b), res + (x @ w + b) as GPT-2's decode step computes them, the
    residual one also added into a prior y (accumulate)."""
    def make(b: CaseBuilder) -> None:
        r = _rng(K, M, 13)
        x = (0.5 * r.standard_normal((1, K))).astype(np.float32)
        w = (r.standard_normal((K, M)) / np.sqrt(K)).astype(np.float32)
        bias, res, prior = (r.standard_normal(s).astype(np.float32) for s in (M, (1, M), (1, M)))
        for name, arr in (("x", x), ("w", w), ("b", bias), ("res", res), ("acc", prior)):
            b.input(name, arr)
        for name in ("y", "y_gelu", "y_res"):
            b.output(name, M)
        dims = {"N": 1, "K": K, "M": M, "accumulate": 0}
        b.dispatch("matvec_forward_bias", ["x", "w", "b", "y"], dims, overrides=overrides, flops=2 * K * M)
        b.dispatch("matvec_forward_bias_gelu", ["x", "w", "b", "y_gelu"], dims, overrides=overrides, flops=2 * K * M)
        b.dispatch("matvec_forward_bias_residual", ["x", "w", "b", "res", "y_res"], dims, overrides=overrides,
                   flops=2 * K * M)
        b.dispatch("matvec_forward_bias_residual", ["x", "w", "b", "res", "acc"], {**dims, "accumulate": 1},
                   overrides=overrides, flops=2 * K * M)
        lin = linear_forward(*_f64(x, w, bias))
        b.expect_close("y", lin, 1e-5, 1e-4, "y = x @ w + b")
        b.expect_close("y_gelu", gelu_forward(lin), 1e-5, 1e-4, "y = gelu(x @ w + b)")
        b.expect_close("y_res", res + lin, 1e-5, 1e-4, "y = res + (x @ w + b)")
        b.expect_close("acc", prior + res + lin, 1e-5, 1e-4, "y += res + (x @ w + b)")
    return ParityCase(f"matvec_forward_bias_{K}x{M}{variant}",
                      ("matvec_forward_bias", "matvec_forward_bias_gelu", "matvec_forward_bias_residual"), make)
