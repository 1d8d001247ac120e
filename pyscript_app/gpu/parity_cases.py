"""The parity cases: every WGSL entry point against the numpy reference, written down as DATA.

numpy-only (imported at site build time by site_src/hooks/refvectors.py and by the native tests;
never in the browser). Each case records a dispatch recipe on named buffers plus the inputs and the
reference outputs; `build_bundle` turns the table into an index (JSON-able) and one binary blob per
case. gpu/parity_runner.py (pure Python) executes a case on ANY Executor from that data, so the
browser and the native host run byte-for-byte the same checks.

How a case is recorded and bundled lives in gpu/parity_case_builder.py. Buffer inits and writes
are float32 / uint32 little-endian; expected values are float64 (compared with |got - ref| <= atol
+ rtol * |ref|, the tolerances of the native kernel tests) or uint32 bit patterns (compared exactly).

The matmul family's cases live in gpu/parity_cases_matmul.py, GPT-2's own kernels' in
gpu/parity_cases_gpt2.py; the table below lists them too.

Adding a kernel: add a case below (or in parity_cases_matmul.py) that dispatches it (tests/test_gpu_parity_cases.py fails while a
registered kernel has none). A case whose kernels are missing from the registry is left out of the
bundle (listed under "skipped"), so the bundle always matches the registry it ships with; so is a
case whose kernels need more workgroup memory than the bundle's device allows (the site's bundle:
WebGPU's default 16 KiB; the native bench's: its device's limit).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..config import preset
from ..reference.adamw import AdamW, decay_mask
from ..reference.init import init_tensor
from ..reference.ops import (clip_coefficient, crossentropy_forward_backward, embedding_backward,
                             embedding_forward, grad_global_norm, relu_backward, relu_forward,
                             rmsnorm_backward, rmsnorm_forward)
from ..reference.ops_attention import attention_backward, attention_forward
from ..reference.dropout import dropout_forward, dropout_mask
from .. import rng
from . import registry
from .parity_case_builder import INDEX_NAME, FORMAT, Bundle, CaseBuilder, ParityCase, _f64, _rng  # noqa: F401 (INDEX_NAME: re-exported)
from .registry import WEBGPU_DEFAULT_WORKGROUP_BYTES
from .parity_cases_coop import _attention_coop, _attention_heads, _attention_softmax, _matmul_coop
from .parity_cases_matmul import (_add_parts, _matmul, _matmul_accumulate, _matmul_bias, _matmul_dx_split,
                                  _matmul_fused, _matmul_rmsnorm, _matmul_split, _matmul_tiles, _tied_head)
from .parity_cases_gpt2 import (_attention_kv_fill, _bias_backward, _embedding_f16, _gelu, _layernorm, _matvec_rows,
                                _matvec_rows_ln)
from .parity_cases_token_choice import _choose_token
from .attention_ops import BLOCKS_BACKWARD_WORKGROUP_BYTES, BLOCKS_FORWARD_WORKGROUP_BYTES, kernel_overrides, tile_rows

# --- init.wgsl: bit-exact against reference/init.py ------------------------------------------------
def _init_normal(seed: int, index: int, n: int, std: float, offset: int = 5):
    def make(b: CaseBuilder) -> None:
        b.output("out", offset + n)
        b.dispatch("init_normal", ["out"], {"n": n, "offset": offset, "key": rng.tensor_key(seed, index),
                                            "scale": rng.init_scale(std)})
        # The NaN prefix checks that elements before `offset` stay untouched.
        b.expect_bits("out", np.concatenate([np.full(offset, np.nan, np.float32), init_tensor(seed, index, n, std)]),
                      "out (NaN prefix, then the init)")
    return ParityCase(f"init_normal_{n}", ("init_normal",), make)


def _fill(n: int, offset: int, value: float):
    def make(b: CaseBuilder) -> None:
        b.output("out", offset + n + 3)
        b.dispatch("fill", ["out"], {"n": n, "offset": offset, "key": 0, "scale": value})
        ref = np.full(offset + n + 3, np.nan, np.float32)
        ref[offset:offset + n] = value
        b.expect_bits("out", ref, "out (NaN outside [offset, offset+n))")
    return ParityCase(f"fill_{n}", ("fill",), make)


# --- elementwise.wgsl: exact --------------------------------------------------------------------
def _relu(n: int):
    def make(b: CaseBuilder) -> None:
        r = _rng(n, 2)
        x, dy = r.standard_normal(n).astype(np.float32), r.standard_normal(n).astype(np.float32)
        x[::7] = 0.0  # the derivative at exactly 0 is taken as 0
        b.input("x", x), b.input("dy", dy), b.output("y", n), b.output("dx", n)
        b.dispatch("relu_forward", ["x", "y"], {"n": n})
        b.dispatch("relu_backward", ["dy", "x", "dx"], {"n": n})
        b.expect_close("y", relu_forward(x), 0, 0, "relu y")
        b.expect_close("dx", relu_backward(dy, x), 0, 0, "relu dx")
    return ParityCase(f"relu_{n}", ("relu_forward", "relu_backward"), make)


def _add(n: int):
    def make(b: CaseBuilder) -> None:
        r = _rng(n, 3)
        a, c = r.standard_normal(n).astype(np.float32), r.standard_normal(n).astype(np.float32)
        b.input("a", a), b.input("b", c), b.output("y", n)
        b.dispatch("add", ["a", "b", "y"], {"n": n})
        b.dispatch("add_inplace", ["a", "b"], {"n": n})  # recorded after add: add still saw the old a
        b.dispatch("add_inplace", ["a", "b"], {"n": n})
        b.expect_close("y", a + c, 0, 0, "a + b")
        b.expect_close("a", (a + c) + c, 0, 0, "a += b twice")
    return ParityCase(f"add_{n}", ("add", "add_inplace"), make)


# --- dropout.wgsl: the mask and values bit-exact against reference/dropout.py ---------------------
def _dropout(n: int, p: float, site: int = 2):
    def make(b: CaseBuilder) -> None:
        r = _rng(n, 4)
        x, res = r.standard_normal(n).astype(np.float32), r.standard_normal(n).astype(np.float32)
        keys = rng.dropout_keys(seed=n, step=3, n_layer=2)
        values = {"n": n, "site": site, "threshold": rng.dropout_threshold(p), "scale": rng.dropout_scale(p)}
        b.input("x", x), b.input("keys", np.array(keys, np.uint32), np.uint32), b.input("res", res)
        b.output("y", n), b.output("z", n)
        b.dispatch("dropout", ["x", "keys", "y"], values)
        b.dispatch("dropout_add", ["x", "keys", "res", "z"], values)
        ref = dropout_forward(x, dropout_mask(keys[site], n, rng.dropout_threshold(p)), rng.dropout_scale(p))
        b.expect_close("y", ref, 0, 0, "dropout y")
        b.expect_close("z", res + ref, 0, 0, "dropout_add z")
    return ParityCase(f"dropout_{n}", ("dropout", "dropout_add"), make)


# --- embedding.wgsl: forward exact; backward atol 1e-6 + rtol 1e-5 -------------------------------
def _embedding(B: int, T: int, Tmax: int, C: int, V: int):
    def make(b: CaseBuilder) -> None:
        r = _rng(B, T, C, V)
        idx = r.integers(0, min(V, 9), size=(B, T))  # few distinct tokens: many repeats to sum
        idx[0, 0] = V - 1
        wte, wpe = r.standard_normal((V, C)).astype(np.float32), r.standard_normal((Tmax, C)).astype(np.float32)
        dx = r.standard_normal((B, T, C)).astype(np.float32)
        dims = {"B": B, "T": T, "C": C, "V": V, "Tmax": Tmax}
        b.input("idx", idx, np.uint32), b.input("wte", wte), b.input("wpe", wpe), b.input("dx", dx)
        b.output("x", B * T * C), b.output("dwte", V * C), b.output("dwpe", Tmax * C)
        b.output("dwte_rows", V * C, fill=0.0)  # the rows entry writes only rows that occur: caller zeroes
        b.dispatch("embedding_forward", ["idx", "wte", "wpe", "x"], dims)
        b.dispatch("embedding_backward_dwte", ["idx", "dx", "dwte"], dims)
        b.dispatch("embedding_backward_dwte_rows", ["idx", "dx", "dwte_rows"], dims)
        b.dispatch("embedding_backward_dwpe", ["dx", "dwpe"], dims)
        ref_dwte, ref_dwpe = embedding_backward(idx, dx.astype(np.float64), V, Tmax)
        b.expect_close("x", embedding_forward(idx, wte, wpe), 0, 0, "x")
        b.expect_close("dwte", ref_dwte, 1e-6, 1e-5, "dwte")
        b.expect_close("dwte_rows", ref_dwte, 1e-6, 1e-5, "dwte (rows entry)")
        b.expect_close("dwpe", ref_dwpe, 1e-6, 1e-5, "dwpe")
    kernels = ("embedding_forward", "embedding_backward_dwte", "embedding_backward_dwte_rows",
               "embedding_backward_dwpe")
    return ParityCase(f"embedding_B{B}_T{T}_C{C}_V{V}", kernels, make)


# --- rmsnorm.wgsl: y, rstd rtol 1e-5; dx, dg atol 1e-5 + rtol 1e-4 ---------------------------------
def _rmsnorm(N: int, C: int, accumulate: int, eps: float = 1e-5):
    def make(b: CaseBuilder) -> None:
        r = _rng(N, C, accumulate)
        x = (r.standard_normal((N, C)) * 3).astype(np.float32)
        g, dy = r.standard_normal(C).astype(np.float32), r.standard_normal((N, C)).astype(np.float32)
        prior_dx, prior_dg = r.standard_normal((N, C)).astype(np.float32), r.standard_normal(C).astype(np.float32)
        dims = {"N": N, "C": C, "eps": eps, "accumulate": accumulate, "dy_parts": 1}
        b.input("x", x), b.input("g", g), b.input("dy", dy), b.input("dx", prior_dx), b.input("dg", prior_dg)
        b.output("y", N * C), b.output("rstd", N)
        b.dispatch("rmsnorm_forward", ["x", "g", "y", "rstd"], dims)
        b.dispatch("rmsnorm_backward", ["dy", "x", "g", "rstd", "dx", "dg"], dims)
        x64, g64, dy64 = _f64(x, g, dy)
        ref_y, ref_rstd = rmsnorm_forward(x64, g64, eps)
        ref_dx, ref_dg = rmsnorm_backward(dy64, x64, g64, ref_rstd)
        if accumulate:  # dx accumulates, dg is always overwritten
            ref_dx = ref_dx + prior_dx
        b.expect_close("y", ref_y, 1e-5, 1e-5, "y")
        b.expect_close("rstd", ref_rstd, 0, 1e-5, "rstd")
        b.expect_close("dx", ref_dx, 1e-5, 1e-4, "dx")
        b.expect_close("dg", ref_dg, 1e-5, 1e-4, "dg")
    kernels = ("rmsnorm_forward", "rmsnorm_backward")
    return ParityCase(f"rmsnorm_{N}x{C}{'_accumulate' if accumulate else ''}", kernels, make)


# --- crossentropy.wgsl: losses atol 1e-5 + rtol 1e-5; dlogits atol 1e-7 + rtol 1e-4 --------------
def _crossentropy(N: int, V: int, scale: float):
    def make(b: CaseBuilder) -> None:
        r = _rng(N, V, int(scale))
        logits = (r.standard_normal((N, V)) * scale).astype(np.float32)  # large scales: overflow guard
        targets = r.integers(0, V, size=N)
        dims = {"N": N, "V": V}
        b.input("logits", logits), b.input("targets", targets, np.uint32)
        b.output("losses", N), b.output("dlogits", N * V), b.output("eval_losses", N)
        b.dispatch("crossentropy_forward_backward", ["logits", "targets", "losses", "dlogits"], dims)
        b.dispatch("crossentropy_forward", ["logits", "targets", "eval_losses"], dims)
        ref_losses, ref_dlogits = crossentropy_forward_backward(logits.astype(np.float64), targets)
        b.expect_close("losses", ref_losses, 1e-5, 1e-5, "losses")
        b.expect_close("eval_losses", ref_losses, 1e-5, 1e-5, "losses (forward only)")
        b.expect_close("dlogits", ref_dlogits, 1e-7, 1e-4, "dlogits")
    return ParityCase(f"crossentropy_{N}x{V}_scale{scale:g}", ("crossentropy_forward_backward", "crossentropy_forward"), make)


# --- adamw.wgsl: norm rtol 1e-5; params atol 1e-6 + rtol 1e-5; m, v atol 1e-9 + rtol 1e-5 --------
ADAMW_HYPER = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1}


def _norm_steps(b: CaseBuilder, grads: str, n: int, max_norm: float | None, span: int, tag: str = "") -> str:
    vals = registry.grad_norm_values(n, max_norm, span)
    b.output("partials" + tag, vals["parts"])
    b.dispatch("grad_norm_partial", [grads, "partials" + tag], vals, flops=2 * n)
    return "partials" + tag


def _adamw_dispatch(b: CaseBuilder, partials: str, norm_clip: str, P: int, uniform: str) -> None:
    b.dispatch("adamw_step", ["weights", "grads", "m", "v", "decay", partials, norm_clip], uniform=uniform,
               shape={"n": P}, flops=15 * P)


def _grad_norm(n: int, span: int, max_norm: float | None):
    """The clip factor adamw_step derives from the partials: with lr = 0, no decay and beta1 = 0,
    m = (1 - 0) * g * clip shows the factor every workgroup applied, norm_clip the norm."""
    def make(b: CaseBuilder) -> None:
        g = _rng(n, span).standard_normal(n).astype(np.float32) * 0.01
        b.input("grads", g), b.input("weights", np.ones(n, np.float32)), b.input("decay", np.ones(n, np.float32))
        b.input("m", np.zeros(n, np.float32)), b.input("v", np.zeros(n, np.float32)), b.output("norm_clip", 2)
        partials = _norm_steps(b, "grads", n, max_norm, span)
        hyper = {"beta1": 0.0, "beta2": 0.0, "eps": 1.0, "weight_decay": 0.0}
        b.uniform("adamw_params", "adamw_step")
        b.write_uniform("adamw_params", "adamw_step", registry.adamw_values(n, 1, 0.0, **hyper, max_norm=max_norm,
                                                                            span=span))
        _adamw_dispatch(b, partials, "norm_clip", n, "adamw_params")
        ref_norm = grad_global_norm(g.astype(np.float64))
        ref_clip = 1.0 if max_norm is None else clip_coefficient(ref_norm, max_norm)
        b.expect_close("norm_clip", np.array([ref_norm, ref_clip]), 0, 1e-5, "[norm, clip]")
        b.expect_close("m", g.astype(np.float64) * ref_clip, 1e-9, 1e-5, "grads * clip in every workgroup")
        b.expect_close("weights", np.ones(n), 0, 0, "weights (lr 0)")
    return ParityCase(f"grad_norm_{n}{'_clip' if max_norm else ''}", ("grad_norm_partial", "adamw_step"), make)


def _adamw_three_steps(model: str = "nano"):
    def make(b: CaseBuilder) -> None:
        cfg = preset(model)
        P = cfg.param_count
        r = _rng(P, 0)
        flat = r.standard_normal(P).astype(np.float32) * 0.1
        ref, ref_flat = AdamW(cfg), flat.copy()
        b.input("weights", flat), b.input("m", np.zeros(P, np.float32)), b.input("v", np.zeros(P, np.float32))
        b.input("decay", decay_mask(cfg)), b.output("grads", P)
        b.uniform("adamw_params", "adamw_step")  # lr and t change every step: a caller-owned buffer
        for t, (lr, gscale) in enumerate([(3e-3, 1.0), (1e-3, 0.001), (2e-3, 0.05)], start=1):
            grads = r.standard_normal(P).astype(np.float32) * gscale  # step 1 is clipped, step 2 not
            b.write("grads", grads)
            partials = _norm_steps(b, "grads", P, 1.0, 256 * 16, tag=str(t))
            b.output(f"norm_clip{t}", 2)
            b.write_uniform("adamw_params", "adamw_step",
                            registry.adamw_values(P, t, lr, **ADAMW_HYPER, max_norm=1.0, span=256 * 16))
            _adamw_dispatch(b, partials, f"norm_clip{t}", P, "adamw_params")
            b.submit()  # the next step rewrites grads and the uniform buffer
            info = ref.step(ref_flat, grads, lr, max_norm=1.0, **ADAMW_HYPER)
            b.expect_close(f"norm_clip{t}", np.array([info["grad_norm"], info["clip"]]), 0, 1e-5,
                           f"step {t} [norm, clip]")
        b.expect_close("weights", ref_flat, 1e-6, 1e-5, "params")
        b.expect_close("m", ref.m, 1e-9, 1e-5, "m")
        b.expect_close("v", ref.v, 1e-9, 1e-5, "v")
    return ParityCase(f"adamw_3_steps_{model}", ("grad_norm_partial", "adamw_step"), make)


# --- attention.wgsl: y atol 1e-5 + rtol 1e-4; lse atol 1e-5 + rtol 1e-5; dqkv atol 2e-5 + rtol 2e-4
_ATTENTION_KINDS = {  # kind -> (forward, backward, workgroup bytes beyond the default, name suffix)
    "columns": ("attention_forward", "attention_backward", 0, ""),
    "rows": ("attention_rows_forward", "attention_rows_backward", 0, "_rows"),
    "blocks_forward": ("attention_blocks_forward", "attention_rows_backward", BLOCKS_FORWARD_WORKGROUP_BYTES,
                       "_blocks_forward"),
    "blocks": ("attention_blocks_forward", "attention_blocks_backward", BLOCKS_BACKWARD_WORKGROUP_BYTES, "_blocks"),
}


def _attention(B: int, T: int, C: int, H: int, BQ: int | None = None, kind: str = "columns"):
    """forward + backward; kind: attention.wgsl's kernels (columns), attention_rows*.wgsl's (the wide
    heads'), or the GPU-only blocks kernels (the forward alone, or both)."""
    forward, backward, workgroup_bytes, suffix = _ATTENTION_KINDS[kind]

    def overrides(kernel: str, D: int, T: int) -> dict[str, int]:  # AttentionOps' own, or the given BQ
        return {**kernel_overrides(kernel, D, T), **({"BQ": BQ} if BQ else {})}

    def make(b: CaseBuilder) -> None:
        r = _rng(B, T, C, H, BQ or 0)
        qkv = (r.standard_normal((B, T, 3 * C)) * 1.5).astype(np.float32)  # softmax far from uniform
        dy = r.standard_normal((B, T, C)).astype(np.float32)
        D = C // H
        dims = {"B": B, "T": T, "C": C, "H": H}
        b.input("qkv", qkv), b.input("dy", dy)
        b.output("y", B * T * C), b.output("lse", B * H * T), b.output("dqkv", qkv.size)
        flops = 4 * B * H * T * T * D // 2  # QK^T and PV over the causal half
        b.dispatch(forward, ["qkv", "y", "lse"], dims, overrides=overrides(forward, D, T), flops=flops)
        b.dispatch(backward, ["dy", "qkv", "y", "lse", "dqkv"], dims, overrides=overrides(backward, D, T),
                   flops=2 * flops)
        qkv64, dy64 = _f64(qkv, dy)
        ref_y, ref_lse = attention_forward(qkv64, H)
        ref_dqkv = attention_backward(dy64, qkv64, ref_y, ref_lse, H)
        b.expect_close("y", ref_y, 1e-5, 1e-4, "y")
        b.expect_close("lse", ref_lse, 1e-5, 1e-5, "lse")
        b.expect_close("dqkv", ref_dqkv, 2e-5, 2e-4, "dqkv")
    return ParityCase(f"attention_B{B}_T{T}_C{C}_H{H}" + (f"_BQ{BQ}" if BQ else "") + suffix,
                      (forward, backward), make, workgroup_bytes)


def _attention_decode(C: int, H: int, Tmax: int):
    """Decode at pos = 0 .. Tmax-1 (the kernel fills the caches itself) gives the forward's rows."""
    def make(b: CaseBuilder) -> None:
        qkv = (_rng(C, H, Tmax).standard_normal((Tmax, 3 * C)) * 1.5).astype(np.float32)
        D = C // H
        over = {"D": D, "BQ": tile_rows(D)}
        b.output("k_cache", H * Tmax * D), b.output("v_cache", H * Tmax * D)
        ref_y, _ = attention_forward(qkv[None].astype(np.float64), H)
        for pos in range(Tmax):
            b.input(f"row{pos}", qkv[pos]), b.output(f"y{pos}", C)
            b.dispatch("attention_decode", [f"row{pos}", "k_cache", "v_cache", f"y{pos}"],
                       {"C": C, "H": H, "Tmax": Tmax, "pos": pos}, overrides=over, flops=4 * H * (pos + 1) * D)
        for pos in range(Tmax):
            b.expect_close(f"y{pos}", ref_y[0, pos], 1e-5, 1e-4, f"y_row at pos {pos}")
        b.expect_bits("k_cache", qkv[:, C:2 * C].reshape(Tmax, H, D).transpose(1, 0, 2), "k_cache (H, Tmax, D)")
        b.expect_bits("v_cache", qkv[:, 2 * C:].reshape(Tmax, H, D).transpose(1, 0, 2), "v_cache (H, Tmax, D)")
    return ParityCase(f"attention_decode_C{C}_H{H}_T{Tmax}", ("attention_decode",), make)


# --- reduce.wgsl: atol 1e-7 + rtol 1e-6 ---------------------------------------------------------
def _mean_into_slot(n: int, slots: int = 5):
    def make(b: CaseBuilder) -> None:
        x = (_rng(n).standard_normal(n) + 7.0).astype(np.float32)  # losses are positive
        slot = n % slots
        b.input("x", x), b.output("out", slots, fill=-1.0)
        b.dispatch("mean_into_slot", ["x", "out"], {"n": n, "slot": slot})
        expect = np.full(slots, -1.0)
        expect[slot] = x.astype(np.float64).mean()
        b.expect_close("out", expect, 1e-7, 1e-6, f"mean of {n} into slot {slot}, others untouched")
    return ParityCase(f"mean_into_slot_{n}", ("mean_into_slot",), make)


# --- federated.wgsl: bit-exact against numpy's float16 <-> float32 and f32 arithmetic ----------------
def _federated_values(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, weights) (n,) float32 whose differences cover f16's cases: normal values, exact ties
    between two f16 values, subnormals, values beyond 65504 (saturated), and +-0."""
    r = _rng(n, seed)
    start = (r.standard_normal(n) * 0.05).astype(np.float32)
    diff = (r.standard_normal(n) * np.exp2(r.integers(-30, 18, n))).astype(np.float32)
    halves = np.arange(0, 0x7BFF, 97, dtype=np.uint16).view(np.float16).astype(np.float64)
    ties = ((halves + np.nextafter(halves.astype(np.float16), np.float16(np.inf)).astype(np.float64)) / 2)
    k = min(n // 3, ties.size)
    diff[:k] = (ties[:k] * np.where(np.arange(k) % 2, -1, 1)).astype(np.float32)
    diff[k:k + 4] = [70000.0, -1e30, 0.0, -0.0]
    start[:k + 4] = 0.0  # the difference is then exactly diff (a tie stays a tie)
    return start, (start + diff).astype(np.float32)


def _federated(n: int):
    def make(b: CaseBuilder) -> None:
        start, weights = _federated_values(n, 1)
        delta = np.clip(weights - start, -65504, 65504).astype("<f2")
        pairs = np.concatenate([delta, np.zeros(n % 2, "<f2")]).view("<u4")  # (ceil(n/2),) two halves each
        update = (_rng(n, 2).standard_normal(n) * np.exp2(_rng(n, 3).integers(-26, 0, n))).astype("<f2")
        update_pairs = np.concatenate([update, np.zeros(n % 2, "<f2")]).view("<u4")
        b.input("weights", weights), b.input("start", start), b.output("delta", pairs.size)
        b.input("update", update_pairs, np.uint32), b.input("start_io", start), b.output("weights_out", n)
        b.dispatch("delta_f16", ["weights", "start", "delta"], {"n": n})
        b.dispatch("apply_update_f16", ["update", "start_io", "weights_out"], {"n": n})
        new = np.add(start, update.astype(np.float32), dtype=np.float32)
        b.expect_bits("delta", pairs, "delta f16 pairs = clip(weights - start).astype(f2)")
        b.expect_bits("start_io", new, "start + f32(update)")
        b.expect_bits("weights_out", new, "weights = the new start")
    return ParityCase(f"federated_{n}", ("delta_f16", "apply_update_f16"), make)


# Small shapes (SwiftShader runs WebGPU on the CPU in CI), awkward ones included: sizes that are not
# multiples of the tiles / workgroups, single elements, accumulate variants.
CASES: tuple[ParityCase, ...] = (
    _init_normal(1337, 3, 1000, 0.125),
    _fill(300, 7, 1.0),
    _matmul(1, 1, 1),
    _matmul(7, 5, 3),
    _matmul(33, 17, 65),
    _matmul(65, 64, 129),
    _matmul_accumulate(9, 20, 33),
    _matmul_tiles(130, 40, 259, {"TM": 128, "TN": 128}),
    _matmul_tiles(33, 17, 65, {"TM": 32, "TN": 32}),
    _matmul_fused(33, 17, 65),
    _matmul_fused(130, 24, 36, {"TM": 128, "TN": 32}),
    _matmul_rmsnorm(7, 16, 48),
    _matmul_rmsnorm(33, 17, 65, {"TM": 32, "TN": 32}),
    _matmul_split(70, 17, 65, 3),  # chunks of 24 positions (TK multiples), the last one shorter
    _matmul_split(200, 24, 36, 4, {"TM": 32, "TN": 32}, variant="_v4"),
    _matmul_dx_split(40, 16, 100, 3, 2, variant="_v4"),
    _add_parts(1000, 3, 1030),
    # the vec4-load twins (K, M multiples of 4; N free)
    _matmul(65, 20, 36, variant="_v4"),
    _matmul_fused(33, 20, 68, variant="_v4"),
    _matmul_fused(130, 24, 36, {"TM": 128, "TN": 32}, variant="_v4"),
    _matmul_rmsnorm(7, 16, 48, variant="_v4"),
    _matmul_rmsnorm(33, 20, 68, {"TM": 32, "TN": 32}, variant="_v4"),
    # 4 x 4 outputs per invocation (matmul_rules.matmul_small_outputs, matmul_backward_small_outputs,
    # matmul_forward_kgroups: what GPUs run for products with few outputs); K = 100: ragged 16-deep slices
    _matmul_rmsnorm(70, 100, 68, {"TM": 32, "TN": 32, "RPI": 4}, variant="_v4"),
    _matmul_fused(70, 100, 68, {"TM": 32, "TN": 32, "RPI": 4, "KGROUPS": 4}, variant="_v4"),
    _matmul_split(200, 20, 36, 3, {"TM": 64, "TN": 64, "RPI": 4}, variant="_v4"),
    # the barrier-free twins (matmul_direct.wgsl) that SwiftShader dispatches instead
    _matmul_fused(33, 17, 65, variant="_direct"),
    _matmul_rmsnorm(33, 17, 65, variant="_direct"),
    _relu(257),
    _add(1000),
    _dropout(1001, 0.3),
    _embedding(3, 5, 8, 65, 11),
    _embedding(1, 7, 16, 16, 1024),
    _rmsnorm(7, 16, 0),
    _rmsnorm(33, 65, 1),
    _crossentropy(7, 3, 1.0),
    _crossentropy(5, 1000, 40.0),
    _crossentropy(3, 257, 1e3),
    _grad_norm(1000, 256, 1.0),
    _grad_norm(5000, 256, None),
    _adamw_three_steps("nano"),
    _attention(1, 1, 16, 4),
    _attention(2, 5, 16, 4),
    _attention(3, 33, 64, 2),
    _attention(2, 11, 24, 2, BQ=3),
    _attention(2, 70, 64, 2, kind="rows"),
    _attention(2, 70, 128, 2, kind="blocks_forward"),
    _attention(2, 70, 128, 2, kind="blocks"),
    _attention_decode(48, 4, 9),
    _mean_into_slot(257),
    _mean_into_slot(8 * 32 * 3 + 5),
    _federated(1001),
    _federated(4096),
    # GPT-2's kernels (gpu/parity_cases_gpt2.py; the bias epilogues and the tied head: parity_cases_matmul.py)
    _layernorm(7, 16, 0),
    _layernorm(33, 200, 1, offset=20.0),  # |mean| >> std: the variance from centred values
    _gelu(1001),
    _matmul_bias(33, 17, 65),
    _matmul_bias(65, 20, 132, {"TM": 32, "TN": 32, "RPI": 4}, variant="_v4"),
    _bias_backward(37, 130),
    _tied_head(3, 64, 301, 320),  # wte (Vp,C) with Vp > V: padding rows never read nor written
    # GPT-2's products and head against weights stored as rows (decoding: one row; a prompt: a few)
    _matvec_rows(1, 132, 203),
    _matvec_rows(3, 64, 97, overrides={"WG": 64, "LANES": 16}, variant="_gpu"),  # GPU adapters' overrides
    _matvec_rows(1, 132, 203, "f16"),  # f16 weights (two per u32), f32 arithmetic
    _matvec_rows(3, 64, 97, "f16", overrides={"WG": 64, "LANES": 16}, variant="_gpu"),
    _embedding_f16(2, 7, 12, 41, 9),
    _matvec_rows_ln(5, 72, 45),  # a LayerNorm folded into the product after it
    _matvec_rows_ln(1, 64, 97, "f16", {"WG": 64, "LANES": 16}),
    _attention_kv_fill(48, 4, 16, 9),
    # the next token from a row of logits (gpu/parity_cases_token_choice.py): greedy, temperature, top-k, top-p
    _choose_token(1000, 1024, ((0.0, 0, 1.0), (1.0, 0, 1.0), (0.8, 40, 0.95), (1.0, 0, 0.5), (1.5, 3, 0.3))),
    # the products on the matrix units (gpu/parity_cases_coop.py; mixed-precision devices only)
    _matmul_coop(200, 84, 136),
    _attention_softmax(3, 20),
    _attention_softmax(2, 136),  # a row of 34 vec4 over the workgroup's 64 invocations
    _attention_coop(2, 72, 96, 3),  # 72: past one 64-row block, ragged
    _attention_heads(2, 72, 96, 3),
)


def covered_kernels(cases: Iterable[ParityCase] = CASES) -> set[str]:
    return {k for c in cases for k in c.kernels}




def build_bundle(cases: Iterable[ParityCase] = CASES, kernels: Mapping[str, object] | None = None,
                 workgroup_bytes: int | None = WEBGPU_DEFAULT_WORKGROUP_BYTES, coop: bool = False) -> Bundle:
    """Index + blobs for the cases whose kernels are all registered and fit `workgroup_bytes` of
    workgroup memory (None: every case), and that need the matrix units only when `coop` (a device
    opened for mixed precision); the others go under "skipped", with the reason."""
    known = registry.KERNELS if kernels is None else kernels
    index: dict[str, Any] = {"format": FORMAT, "cases": [], "skipped": []}
    blobs: dict[str, bytes] = {}
    for case in cases:
        missing = [k for k in case.kernels if k not in known]
        if missing:
            index["skipped"].append({"name": case.name, "missing_kernels": missing})
            continue
        if workgroup_bytes is not None and case.workgroup_bytes > workgroup_bytes:
            index["skipped"].append({"name": case.name, "needs_workgroup_bytes": case.workgroup_bytes})
            continue
        if case.needs_coop and not coop:
            index["skipped"].append({"name": case.name, "needs": "a device opened for mixed precision"})
            continue
        meta, blob = case.build()
        index["cases"].append(meta)
        blobs[meta["file"]] = blob
    return Bundle(index, blobs)
