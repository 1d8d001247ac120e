"""The parity cases of GPT-2's own kernels (reference/ops_gpt2.py): layernorm.wgsl, elementwise.wgsl's
GELU, bias.wgsl's bias gradient, and attention.wgsl's batched KV-cache fill for a prefill. (The bias
epilogues of the matmul and the tied head are in gpu/parity_cases_matmul.py.) Part of
gpu/parity_cases.py's table (see its docstring); numpy-only, never in the browser.
"""

from __future__ import annotations

import numpy as np

from ..reference.ops_attention import attention_forward
from ..reference.ops_gpt2 import gelu_backward, gelu_forward, layernorm_backward, layernorm_forward
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


# --- matvec.wgsl / matvec_f16.wgsl: products against weights stored as rows: atol 1e-5 + rtol 1e-4 ---------
def _matvec_rows(N: int, K: int, M: int, dtype: str = "f32", overrides: dict[str, int] | None = None,
                 variant: str = ""):
    """GPT-2's products as gpu/gpt2_model.py computes them (one row when decoding, a few for a prompt), with w
    packed into rows on the GPU as gpu/gpt2_weights.py does (pack_rows_transposed*): y = x @ w + b, gelu(...),
    res + (...), the residual one also added into a prior y (accumulate), and the tied head's out = x @ w[:M].T
    over rows stored as they are (rows M.. NaN: never read). f16: the weights rounded to f16, two per u32 (the
    packed bits checked: every device seen rounds to nearest even, as numpy does), f32 arithmetic."""
    suffix, wtype = ("_f16", np.float16) if dtype == "f16" else ("", np.float32)
    kernels = tuple(k + suffix for k in ("matvec_rows", "matvec_rows_bias", "matvec_rows_bias_gelu",
                                         "matvec_rows_bias_residual", "pack_rows_transposed"))

    def make(b: CaseBuilder) -> None:
        r = _rng(N, K, M, 13)
        x = (0.5 * r.standard_normal((N, K))).astype(np.float32)
        w = (r.standard_normal((K, M)) / np.sqrt(K)).astype(np.float32)
        heads = np.concatenate([w.T, np.full((2, K), np.nan, np.float32)])  # (M + 2, K) rows, 2 never read
        bias, res, prior = (r.standard_normal(s).astype(np.float32) for s in (M, (N, M), (N, M)))
        for name, arr in (("x", x), ("w", w), ("b", bias), ("res", res), ("acc", prior)):
            b.input(name, arr)
        b.input("heads", heads, wtype)
        b.output("rows", K * M // 2 if dtype == "f16" else K * M)  # u32 words: two f16 per word
        for name in ("y", "y_gelu", "y_res", "out"):
            b.output(name, N * M)
        dims, flops = {"N": N, "K": K, "M": M, "accumulate": 0}, 2 * N * K * M
        b.dispatch("pack_rows_transposed" + suffix, ["w", "rows"], {"n": K * M, "M": M, "K": K, "row0": 0})
        b.dispatch("matvec_rows_bias" + suffix, ["x", "rows", "b", "y"], dims, overrides=overrides, flops=flops)
        b.dispatch("matvec_rows_bias_gelu" + suffix, ["x", "rows", "b", "y_gelu"], dims, overrides=overrides,
                   flops=flops)
        b.dispatch("matvec_rows_bias_residual" + suffix, ["x", "rows", "b", "res", "y_res"], dims,
                   overrides=overrides, flops=flops)
        b.dispatch("matvec_rows_bias_residual" + suffix, ["x", "rows", "b", "res", "acc"], {**dims, "accumulate": 1},
                   overrides=overrides, flops=flops)
        b.dispatch("matvec_rows" + suffix, ["x", "heads", "out"], dims, overrides=overrides, flops=flops)
        stored = w.T.astype(wtype)
        b.expect_bits("rows", stored.reshape(-1).view(np.uint32), "rows = w.T in the weights' type")
        ws = stored.astype(np.float64).T
        lin = x.astype(np.float64) @ ws + bias
        b.expect_close("y", lin, 1e-5, 1e-4, "y = x @ w + b")
        b.expect_close("y_gelu", gelu_forward(lin), 1e-5, 1e-4, "y = gelu(x @ w + b)")
        b.expect_close("y_res", res + lin, 1e-5, 1e-4, "y = res + (x @ w + b)")
        b.expect_close("acc", prior + res + lin, 1e-5, 1e-4, "y += res + (x @ w + b)")
        head = x.astype(np.float64) @ heads[:M].astype(wtype).astype(np.float64).T
        b.expect_close("out", head, 1e-5, 1e-4, "out = x @ w[:M].T")
    return ParityCase(f"matvec_rows_{N}x{K}x{M}_{dtype}{variant}", kernels, make)


def _embedding_f16(B: int, T: int, C: int, V: int, Tmax: int):
    """wte packed into f16 on the GPU as gpu/gpt2_weights.py does (pack_rows_f16, two chunks of rows), then
    GPT-2's embedding with it: x = f32(wte16[idx]) + wpe[t]; tokens past V clamped to V - 1."""
    def make(b: CaseBuilder) -> None:
        r = _rng(B, T, C, V, 17)
        wte = r.standard_normal((V, C)).astype(np.float32)
        wpe = r.standard_normal((Tmax, C)).astype(np.float32)
        idx = r.integers(0, V + 3, size=(B, T)).astype(np.uint32)
        half = V // 2
        b.input("top", wte[:half]), b.input("bottom", wte[half:]), b.input("wpe", wpe)
        b.input("idx", idx, np.uint32)
        b.output("wte16", V * C // 2), b.output("x", B * T * C)
        b.dispatch("pack_rows_f16", ["top", "wte16"], {"n": half * C, "M": C, "K": V, "row0": 0})
        b.dispatch("pack_rows_f16", ["bottom", "wte16"], {"n": (V - half) * C, "M": C, "K": V, "row0": half})
        b.dispatch("embedding_forward_f16", ["idx", "wte16", "wpe", "x"],
                   {"B": B, "T": T, "C": C, "V": V, "Tmax": Tmax})
        stored = wte.astype(np.float16)
        b.expect_bits("wte16", stored.reshape(-1).view(np.uint32), "wte rounded to f16, rows in place")
        ref = stored.astype(np.float32)[np.minimum(idx, V - 1)] + wpe[None, :T]
        b.expect_close("x", ref, 0.0, 0.0, "x = f32(wte16[idx]) + wpe[t] (exact: one f32 addition)")
    return ParityCase(f"embedding_f16_B{B}_T{T}_C{C}_V{V}", ("pack_rows_f16", "embedding_forward_f16"), make)


def _matvec_rows_ln(N: int, K: int, M: int, dtype: str = "f32", overrides: dict[str, int] | None = None):
    """GPT-2's LayerNorm folded into the product after it (ln_1 + qkv, ln_2 + mlp.c_fc):
    layernorm(x) @ w[:M].T + b (GELU), one row with |mean| >> std (the variance from centred values); f16:
    w rounded to f16."""
    suffix, wtype = ("_f16", np.float16) if dtype == "f16" else ("", np.float32)

    def make(b: CaseBuilder) -> None:
        r = _rng(N, K, M, 19)
        x = r.standard_normal((N, K)).astype(np.float32)
        x[0] += 20.0
        g, beta = (1 + 0.2 * r.standard_normal(K)).astype(np.float32), (0.2 * r.standard_normal(K)).astype(np.float32)
        w = (r.standard_normal((K, M)) / np.sqrt(K)).astype(wtype)
        bias = r.standard_normal(M).astype(np.float32)
        for name, arr in (("x", x), ("g", g), ("beta", beta), ("b", bias)):
            b.input(name, arr)
        b.input("w", np.ascontiguousarray(w.T), wtype)
        for name in ("y", "y_gelu"):
            b.output(name, N * M)
        dims, flops = {"N": N, "K": K, "M": M, "eps": 1e-5}, 2 * N * K * M
        b.dispatch("matvec_rows_ln_bias" + suffix, ["x", "g", "beta", "w", "b", "y"], dims, overrides=overrides,
                   flops=flops)
        b.dispatch("matvec_rows_ln_bias_gelu" + suffix, ["x", "g", "beta", "w", "b", "y_gelu"], dims,
                   overrides=overrides, flops=flops)
        xn, _, _ = layernorm_forward(*_f64(x, g, beta), 1e-5)
        lin = xn @ w.astype(np.float64)
        b.expect_close("y", lin + bias, 1e-5, 1e-4, "y = layernorm(x) @ w + b")
        b.expect_close("y_gelu", gelu_forward(lin + bias), 1e-5, 1e-4, "y = gelu(layernorm(x) @ w + b)")
    return ParityCase(f"matvec_rows_ln_{N}x{K}x{M}_{dtype}",
                      tuple(k + suffix for k in ("matvec_rows_ln_bias", "matvec_rows_ln_bias_gelu")),
                      make)
