"""The kernel registry: everything a host needs to run a WGSL entry point, for both hosts.

Pure Python (runs in Pyodide). One `Kernel` per entry point:
    file       the .wgsl file in shaders/ (the text on disk is exactly what runs)
    entry      the entry point's name (equal to the kernel's name)
    bindings   (name, access) in binding order, group 0; access is "read", "read_write" or
               "uniform"; the uniform struct is always the LAST binding
    uniform    the uniform struct's fields (name, WGSL type) in declaration order; pack it with
               gpu.uniforms.pack(kernel.uniform, values)
    overrides  override constants and their defaults (compile-time knobs; pipelines are cached
               per (kernel, overrides))
    grid       values -> (x, y, z) workgroup counts; `values` holds the uniform fields plus the
               resolved override constants (see Kernel.workgroups)

tests/test_gpu_registry.py checks every entry against the .wgsl text (binding numbers, access
modes, uniform fields, override names), so the registry and the shaders cannot drift apart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .matmul_rules import _tiles, is_gpu_adapter  # noqa: F401  (is_gpu_adapter: callers import it from here too)

READ, READ_WRITE, UNIFORM = "read", "read_write", "uniform"
MAX_WORKGROUPS_PER_DIM = 65535  # WebGPU's default maxComputeWorkgroupsPerDimension
WEBGPU_DEFAULT_WORKGROUP_BYTES = 16384  # maxComputeWorkgroupStorageSize without a requested limit

Grid = tuple[int, int, int]


def ceil_div(a: int, b: int) -> int:
    return -(-int(a) // int(b))


def grid_1d(n: int, wg: int) -> Grid:
    """Workgroups for n invocations of a 1-D kernel, folded into (x, y) past 65535 groups.

    Kernels recover the flat index as (wid.y * num_workgroups.x + wid.x) * WG + lid."""
    groups = ceil_div(n, wg)
    x = min(groups, MAX_WORKGROUPS_PER_DIM)
    return (x, ceil_div(groups, x) if x else 1, 1)


@dataclass(frozen=True)
class Kernel:
    name: str
    file: str
    bindings: tuple[tuple[str, str], ...]
    uniform: tuple[tuple[str, str], ...]
    overrides: tuple[tuple[str, int | float], ...]
    grid: Callable[[Mapping[str, float]], Grid]

    @property
    def entry(self) -> str:
        return self.name

    @property
    def storage_bindings(self) -> tuple[tuple[str, str], ...]:
        """The bindings a caller passes buffers for (all but the trailing uniform)."""
        return self.bindings[:-1]

    def resolve_overrides(self, overrides: Mapping[str, int | float] | None = None) -> dict[str, int | float]:
        """Defaults updated with `overrides`; unknown names are an error."""
        out = dict(self.overrides)
        for k, v in (overrides or {}).items():
            if k not in out:
                raise KeyError(f"kernel {self.name!r} has no override {k!r} (has {sorted(out)})")
            out[k] = v
        return out

    def workgroups(self, values: Mapping[str, float], overrides: Mapping[str, int | float] | None = None) -> Grid:
        merged = dict(values)
        merged.update(self.resolve_overrides(overrides))
        return tuple(int(g) for g in self.grid(merged))  # type: ignore[return-value]


KERNELS: dict[str, Kernel] = {}


def _register(file: str, name: str, bindings, uniform, overrides, grid) -> None:
    KERNELS[name] = Kernel(name, file, tuple(bindings), tuple(uniform), tuple(overrides), grid)


def get(name: str) -> Kernel:
    try:
        return KERNELS[name]
    except KeyError:
        raise KeyError(f"unknown kernel {name!r}") from None


# --- init.wgsl -------------------------------------------------------------------------------
INIT_UNIFORM = (("n", "u32"), ("offset", "u32"), ("key", "u32"), ("scale", "f32"))
for _name in ("init_normal", "fill"):
    _register("init.wgsl", _name, [("out", READ_WRITE), ("params", UNIFORM)], INIT_UNIFORM,
              [("WG", 256)], lambda v: grid_1d(v["n"], v["WG"]))

# --- matmul.wgsl -----------------------------------------------------------------------------
# (Its choice rules, tiles to split sums, are gpu/matmul_rules.py.)
# Field names are the FORWARD's shapes for all entries: x (N,K), w (K,M), y (N,M). TM x TN is the
# output tile of one workgroup (32, 64 or 128 each); matmul_tiles picks it per shape.
MATMUL_UNIFORM = (("N", "u32"), ("K", "u32"), ("M", "u32"), ("accumulate", "u32"))
MATMUL_OVERRIDES = [("TM", 64), ("TN", 64), ("SPLIT", 2), ("DX_SPLIT", 1), ("KGROUPS", 1),  # SPLIT, DX_SPLIT: the split entries' only
                    ("RPI", 8)]  # outputs per invocation along each dimension: 8 or 4 (matmul_small_outputs)
# rmsnorm_backward's overrides on GPU adapters (gpu/model_ops.py passes them): its dg columns are
# summed by WG / DG_COLS row lanes each, latency-bound with the defaults (64 / 8: 8 lanes walking
# 256 rows each at N = 2048). Measured on an H200 under Dawn (2026-12-03, ms per step): WG 64 -> 256
# takes large 18.48 -> 17.76 and medium 5.17 -> 4.87 (split-probe-h200-dawn-2026-12-03.json); at
# WG 256, DG_COLS 8 / 4 / 2 / 1 give large 17.89 / 17.47 / 17.35 / 17.55 and medium 4.34 / 4.19 /
# 4.11 / 4.19 (two runs each, within 0.04: split-probe3-h200-dawn-2026-12-03.json).
RMSNORM_BACKWARD_GPU_OVERRIDES = {"WG": 256, "DG_COLS": 2}


def _mm_grid(rows: str, cols: str):
    return lambda v: (ceil_div(v[cols], v["TN"]), ceil_div(v[rows], v["TM"]), 1)


def _mm_backward_grid(v) -> Grid:
    """dx (N,K) tiles then dw (K,M) tiles, numbered flat (the kernel reads num_workgroups)."""
    n = _tiles(v["N"], v["K"], v["TM"], v["TN"]) + _tiles(v["K"], v["M"], v["TM"], v["TN"])
    return grid_1d(n, 1)


_MM3 = lambda a, b, out: [(a, READ), (b, READ), (out, READ_WRITE), ("params", UNIFORM)]  # noqa: E731
_register("matmul.wgsl", "matmul_forward", _MM3("x", "w", "y"), MATMUL_UNIFORM, MATMUL_OVERRIDES, _mm_grid("N", "M"))
_register("matmul.wgsl", "matmul_backward_dx", _MM3("dy", "w", "dx"), MATMUL_UNIFORM, MATMUL_OVERRIDES,
          _mm_grid("N", "K"))
_register("matmul.wgsl", "matmul_backward_dw", _MM3("x", "dy", "dw"), MATMUL_UNIFORM, MATMUL_OVERRIDES,
          _mm_grid("K", "M"))
_register("matmul.wgsl", "matmul_forward_residual",
          [("x", READ), ("w", READ), ("res", READ), ("y", READ_WRITE), ("params", UNIFORM)],
          MATMUL_UNIFORM, MATMUL_OVERRIDES, _mm_grid("N", "M"))
for _name in ("matmul_backward", "matmul_backward_relu"):
    _register("matmul.wgsl", _name,
              [("x", READ), ("w", READ), ("dy", READ), ("dx", READ_WRITE), ("dw", READ_WRITE), ("params", UNIFORM)],
              MATMUL_UNIFORM, MATMUL_OVERRIDES, _mm_backward_grid)

# matmul_backward with dw's inner sum split into SPLIT parts: part 0 into dw, parts 1.. into dw_parts at
# (s - 1) * part_stride (the caller binds dw_parts at the weight's offset in a parts buffer), added
# into the gradients by split_reduce.wgsl's add_parts. matmul_dw_split picks SPLIT.
MATMUL_SPLIT_UNIFORM = MATMUL_UNIFORM + (("part_stride", "u32"),)


def _mm_split_grid(v) -> Grid:
    """DX_SPLIT x dx (N,K) tiles, then SPLIT x dw (K,M) tiles, numbered flat."""
    n = v["DX_SPLIT"] * _tiles(v["N"], v["K"], v["TM"], v["TN"]) + v["SPLIT"] * _tiles(v["K"], v["M"], v["TM"], v["TN"])
    return grid_1d(n, 1)


for _name in ("matmul_backward_split", "matmul_backward_relu_split"):
    _register("matmul.wgsl", _name,
              [("x", READ), ("w", READ), ("dy", READ), ("dx", READ_WRITE), ("dw", READ_WRITE),
               ("dw_parts", READ_WRITE), ("params", UNIFORM)],
              MATMUL_SPLIT_UNIFORM, MATMUL_OVERRIDES, _mm_split_grid)

# rmsnorm folded into the matmul after it: y = (x * rstd * g) @ w, also storing xn (N,K) and rstd (N,)
MATMUL_NORM_UNIFORM = (("N", "u32"), ("K", "u32"), ("M", "u32"), ("eps", "f32"))
for _name in ("matmul_forward_rmsnorm", "matmul_forward_rmsnorm_relu"):
    _register("matmul.wgsl", _name,
              [("x", READ), ("w", READ), ("g", READ), ("y", READ_WRITE), ("xn", READ_WRITE), ("rstd", READ_WRITE),
               ("params", UNIFORM)],
              MATMUL_NORM_UNIFORM, MATMUL_OVERRIDES, _mm_grid("N", "M"))

# the bias in the epilogue (GPT-2's linear layers): y = x @ w + b, gelu(x @ w + b), res + (x @ w + b)
for _name in ("matmul_forward_bias", "matmul_forward_bias_gelu"):
    _register("matmul.wgsl", _name, [("x", READ), ("w", READ), ("b", READ), ("y", READ_WRITE), ("params", UNIFORM)],
              MATMUL_UNIFORM, MATMUL_OVERRIDES, _mm_grid("N", "M"))
_register("matmul.wgsl", "matmul_forward_bias_residual",
          [("x", READ), ("w", READ), ("b", READ), ("res", READ), ("y", READ_WRITE), ("params", UNIFORM)],
          MATMUL_UNIFORM, MATMUL_OVERRIDES, _mm_grid("N", "M"))

# vec4-load twins: "<entry>_v4" for each entry above, with the same bindings, uniform, overrides and
# grid; they read every operand as array<vec4<f32>> (one 16-byte load per global read instead of
# four 4-byte ones) and give BIT-IDENTICAL outputs, but need K % 4 == 0 and M % 4 == 0 (the
# operands' contiguous dimensions; N is free). matmul_entry picks one or the other. Why: with vec4
# loads a stand-alone kernel of this design reaches 0.61x PyTorch at 4096^3 and 0.69x at the large
# model's fc shape (2048 x 512 x 2048), against 0.50x and ~0.34x for matmul.wgsl's scalar loads (H200
# under Dawn, gemm-vec4-probe-h200-dawn-2026-11-22.json).
MATMUL_VEC4_TWINS: dict[str, str] = {
    name: name + "_v4" for name in ("matmul_forward", "matmul_backward_dx", "matmul_backward_dw",
                                    "matmul_forward_residual", "matmul_backward", "matmul_backward_relu",
                                    "matmul_backward_split", "matmul_backward_relu_split",
                                    "matmul_forward_rmsnorm", "matmul_forward_rmsnorm_relu",
                                    "matmul_forward_bias", "matmul_forward_bias_gelu", "matmul_forward_bias_residual")}
for _name, _twin in MATMUL_VEC4_TWINS.items():
    _k = KERNELS[_name]
    _register("matmul_vec4.wgsl", _twin, _k.bindings, _k.uniform, _k.overrides, _k.grid)

# Adapter architectures (adapter_info["architecture"], lower case, e.g. "swiftshader") on which
# matmul_entry keeps the scalar-load entries: the switch for an adapter where vec4 loads turn out
# slower. Empty: vec4 loads were faster on an H200 (Dawn) and no slower on llvmpipe.
# Caveat: playground/pipeline_plan.training_pipelines plans with an adapter-less executor, so on a
# listed adapter the browser's boot would compile the twins and the first step the scalar entries.
MATMUL_VEC4_OFF_ARCHITECTURES: set[str] = set()


def matmul_entry(kernel: str, N: int, K: int, M: int, adapter_info: Mapping[str, object] | None = None) -> str:
    """The entry to dispatch for matmul.wgsl's `kernel` (a scalar entry's name) at the forward shapes
    x (N,K) @ w (K,M): its vec4-load twin when K and M are multiples of 4 and the adapter's
    architecture is not in MATMUL_VEC4_OFF_ARCHITECTURES, else `kernel` itself."""
    twin = MATMUL_VEC4_TWINS[kernel]  # KeyError: not a scalar matmul entry
    arch = str((adapter_info or {}).get("architecture") or "").lower()
    if K % 4 or M % 4 or arch in MATMUL_VEC4_OFF_ARCHITECTURES:
        return kernel
    return twin


def with_vec4_twins(table: Mapping[str, object]) -> dict[str, object]:
    """A per-kernel table (ADAPTER_OVERRIDES / ADAPTER_KERNELS of one adapter) with each scalar matmul
    entry's value also under its vec4 twin's name, unless the table names the twin itself."""
    out = dict(table)
    for name, twin in MATMUL_VEC4_TWINS.items():
        if name in table:
            out.setdefault(twin, table[name])
    return out

# --- elementwise.wgsl ------------------------------------------------------------------------
ELT_UNIFORM = (("n", "u32"),)
_elt_grid = lambda v: grid_1d(v["n"], v["WG"])  # noqa: E731
_register("elementwise.wgsl", "relu_forward", [("x", READ), ("y", READ_WRITE), ("params", UNIFORM)],
          ELT_UNIFORM, [("WG", 256)], _elt_grid)
_register("elementwise.wgsl", "relu_backward", [("dy", READ), ("x", READ), ("dx", READ_WRITE), ("params", UNIFORM)],
          ELT_UNIFORM, [("WG", 256)], _elt_grid)
_register("elementwise.wgsl", "add", [("a", READ), ("b", READ), ("y", READ_WRITE), ("params", UNIFORM)],
          ELT_UNIFORM, [("WG", 256)], _elt_grid)
_register("elementwise.wgsl", "add_inplace", [("a", READ_WRITE), ("b", READ), ("params", UNIFORM)],
          ELT_UNIFORM, [("WG", 256)], _elt_grid)
_register("elementwise.wgsl", "gelu_forward", [("x", READ), ("y", READ_WRITE), ("params", UNIFORM)],
          ELT_UNIFORM, [("WG", 256)], _elt_grid)
_register("elementwise.wgsl", "gelu_backward", [("dy", READ), ("x", READ), ("dx", READ_WRITE), ("params", UNIFORM)],
          ELT_UNIFORM, [("WG", 256)], _elt_grid)

# --- dropout.wgsl ----------------------------------------------------------------------------
# keys: the (2L+1,) u32 site keys of the current step (rng.dropout_keys), one write per step.
DROPOUT_UNIFORM = (("n", "u32"), ("site", "u32"), ("threshold", "u32"), ("scale", "f32"))
_register("dropout.wgsl", "dropout", [("x", READ), ("keys", READ), ("y", READ_WRITE), ("params", UNIFORM)],
          DROPOUT_UNIFORM, [("WG", 256)], _elt_grid)
_register("dropout.wgsl", "dropout_add",
          [("x", READ), ("keys", READ), ("res", READ), ("y", READ_WRITE), ("params", UNIFORM)],
          DROPOUT_UNIFORM, [("WG", 256)], _elt_grid)

# --- embedding.wgsl --------------------------------------------------------------------------
EMB_UNIFORM = (("B", "u32"), ("T", "u32"), ("C", "u32"), ("V", "u32"), ("Tmax", "u32"))
_register("embedding.wgsl", "embedding_forward",
          [("idx", READ), ("wte", READ), ("wpe", READ), ("x", READ_WRITE), ("params", UNIFORM)],
          EMB_UNIFORM, [("WG", 64)], lambda v: grid_1d(v["B"] * v["T"] * v["C"], v["WG"]))
_register("embedding.wgsl", "embedding_backward_dwte",
          [("idx", READ), ("dx", READ), ("dwte", READ_WRITE), ("params", UNIFORM)],
          EMB_UNIFORM, [("WG", 64)], lambda v: (ceil_div(v["C"], v["WG"]), v["V"], 1))
_register("embedding.wgsl", "embedding_backward_dwte_rows",
          [("idx", READ), ("dx", READ), ("dwte", READ_WRITE), ("params", UNIFORM)],
          EMB_UNIFORM, [("WG", 64)], lambda v: grid_1d(v["B"] * v["T"] * v["C"], v["WG"]))
_register("embedding.wgsl", "embedding_backward_dwpe",
          [("dx", READ), ("dwpe", READ_WRITE), ("params", UNIFORM)],
          EMB_UNIFORM, [("WG", 64)], lambda v: grid_1d(v["Tmax"] * v["C"], v["WG"]))


# --- shader text -----------------------------------------------------------------------------
def shader_dir() -> Path:
    """Where the .wgsl files are: $TABGPT_SHADERS; else the installed package's copy
    (pyscript_app/shaders/, which a built wheel carries); else the repository's shaders/ folder
    (an editable install, the source tree, and the browser's virtual file system)."""
    env = os.environ.get("TABGPT_SHADERS")
    if env:
        return Path(env)
    packaged = resources.files("pyscript_app") / "shaders"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "shaders"


# A whole line `// #include "name.wgsl"` stands for that file's text (WGSL has no includes; shared code
# such as matmul_tiles.wgsl lives once). One level: an included file includes nothing.
INCLUDE_RE = re.compile(r'^// #include "([\w.-]+\.wgsl)"[ \t]*$', re.MULTILINE)


def shader_source(file: str, directory: str | Path | None = None) -> str:
    """The WGSL text of `file` with its include lines expanded (every host compiles this text)."""
    folder = Path(directory) if directory else shader_dir()
    text = folder.joinpath(file).read_text(encoding="utf-8")
    return INCLUDE_RE.sub(lambda m: folder.joinpath(m.group(1)).read_text(encoding="utf-8"), text)


def included_files(directory: str | Path | None = None) -> set[str]:
    """The .wgsl files that other files include (shared code, no kernels registered on them)."""
    folder = Path(directory) if directory else shader_dir()
    return {m.group(1) for p in folder.glob("*.wgsl") for m in INCLUDE_RE.finditer(p.read_text(encoding="utf-8"))}


# --- rmsnorm.wgsl ----------------------------------------------------------------------------
RMSNORM_UNIFORM = (("N", "u32"), ("C", "u32"), ("eps", "f32"), ("accumulate", "u32"), ("dy_parts", "u32"))
_row_grid = lambda v: grid_1d(v["N"] * v["WG"], v["WG"])  # noqa: E731  one workgroup per row
_register("rmsnorm.wgsl", "rmsnorm_forward",
          [("x", READ), ("g", READ), ("y", READ_WRITE), ("rstd", READ_WRITE), ("params", UNIFORM)],
          RMSNORM_UNIFORM, [("WG", 64), ("DG_COLS", 8)], _row_grid)
# DG_COLS: dg columns per backward workgroup (a power of two <= WG; the forward ignores it)
_register("rmsnorm.wgsl", "rmsnorm_backward",  # N dx-row workgroups, then the dg column workgroups
          [("dy", READ), ("x", READ), ("g", READ), ("rstd", READ), ("dx", READ_WRITE), ("dg", READ_WRITE),
           ("params", UNIFORM)],
          RMSNORM_UNIFORM, [("WG", 64), ("DG_COLS", 8)],
          lambda v: grid_1d((v["N"] + ceil_div(v["C"], v["DG_COLS"])) * v["WG"], v["WG"]))

# --- layernorm.wgsl (GPT-2's norm; rmsnorm.wgsl's design) --------------------------------------
LAYERNORM_UNIFORM = (("N", "u32"), ("C", "u32"), ("eps", "f32"), ("accumulate", "u32"), ("dy_parts", "u32"))
_register("layernorm.wgsl", "layernorm_forward",
          [("x", READ), ("w", READ), ("b", READ), ("y", READ_WRITE), ("mean", READ_WRITE), ("rstd", READ_WRITE),
           ("params", UNIFORM)],
          LAYERNORM_UNIFORM, [("WG", 64), ("DG_COLS", 8)], _row_grid)
_register("layernorm.wgsl", "layernorm_backward",  # N dx-row workgroups, then the dw/db column workgroups
          [("dy", READ), ("x", READ), ("w", READ), ("mean", READ), ("rstd", READ), ("dx", READ_WRITE),
           ("dw", READ_WRITE), ("db", READ_WRITE), ("params", UNIFORM)],
          LAYERNORM_UNIFORM, [("WG", 64), ("DG_COLS", 8)],
          lambda v: grid_1d((v["N"] + ceil_div(v["C"], v["DG_COLS"])) * v["WG"], v["WG"]))
# layernorm_backward's overrides on GPU adapters: rmsnorm_backward's (measured there, see
# RMSNORM_BACKWARD_GPU_OVERRIDES; the column sums have the same structure, with db beside dw)
LAYERNORM_BACKWARD_GPU_OVERRIDES = RMSNORM_BACKWARD_GPU_OVERRIDES

# --- bias.wgsl: db = dy.sum(axis=0), a linear layer's bias gradient -------------------------------
BIAS_UNIFORM = (("N", "u32"), ("M", "u32"), ("accumulate", "u32"))
_register("bias.wgsl", "bias_backward", [("dy", READ), ("db", READ_WRITE), ("params", UNIFORM)],
          BIAS_UNIFORM, [("WG", 64), ("COLS", 8)], lambda v: grid_1d(ceil_div(v["M"], v["COLS"]) * v["WG"], v["WG"]))

# --- crossentropy.wgsl -----------------------------------------------------------------------
CE_UNIFORM = (("N", "u32"), ("V", "u32"))
_register("crossentropy.wgsl", "crossentropy_forward_backward",
          [("logits", READ), ("targets", READ), ("losses", READ_WRITE), ("dlogits", READ_WRITE), ("params", UNIFORM)],
          CE_UNIFORM, [("WG", 256)], _row_grid)
_register("crossentropy.wgsl", "crossentropy_forward",
          [("logits", READ), ("targets", READ), ("losses", READ_WRITE), ("params", UNIFORM)],
          CE_UNIFORM, [("WG", 256)], _row_grid)

# --- adamw.wgsl ------------------------------------------------------------------------------
GRADNORM_UNIFORM = (("n", "u32"), ("span", "u32"), ("parts", "u32"), ("max_norm", "f32"))
ADAMW_UNIFORM = (("n", "u32"), ("lr", "f32"), ("beta1", "f32"), ("beta2", "f32"), ("one_minus_beta1", "f32"),
                 ("one_minus_beta2", "f32"), ("eps", "f32"), ("weight_decay", "f32"), ("bc1", "f32"), ("bc2", "f32"),
                 ("parts", "u32"), ("max_norm", "f32"))
_register("adamw.wgsl", "grad_norm_partial", [("grads", READ), ("partials", READ_WRITE), ("params", UNIFORM)],
          GRADNORM_UNIFORM, [("WG", 256), ("PER_INV", 1)],  # PER_INV: the file's override, adamw_step's only
          lambda v: grid_1d(v["parts"] * v["WG"], v["WG"]))
_register("adamw.wgsl", "adamw_step",  # every workgroup reduces the partials to the clip factor itself
          [("weights", READ_WRITE), ("grads", READ), ("m", READ_WRITE), ("v", READ_WRITE), ("decay", READ),
           ("partials", READ), ("norm_clip", READ_WRITE), ("params", UNIFORM)],
          ADAMW_UNIFORM, [("WG", 256), ("PER_INV", 1)], lambda v: grid_1d(ceil_div(v["n"], v["PER_INV"]), v["WG"]))

NORM_SPAN = 256 * 16  # grads elements per grad_norm_partial workgroup, at least
MAX_NORM_PARTS = 1024  # partials every adamw_step workgroup sums (4 per invocation at WG = 256)


def grad_norm_span(n: int) -> int:
    """The smallest multiple of NORM_SPAN that leaves at most MAX_NORM_PARTS partials for n elements."""
    return NORM_SPAN * max(1, ceil_div(n, NORM_SPAN * MAX_NORM_PARTS))


def grad_norm_values(n: int, max_norm: float | None, span: int | None = None) -> dict[str, float]:
    """Uniform values for grad_norm_partial over n gradient elements (max_norm None = no clipping;
    span None = grad_norm_span(n)). `partials` needs parts = ceil(n / span) floats."""
    span = span or grad_norm_span(n)
    return {"n": n, "span": span, "parts": ceil_div(n, span), "max_norm": max_norm or 0.0}


def adamw_values(n: int, t: int, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                 max_norm: float | None = None, span: int | None = None) -> dict[str, float]:
    """Uniform values of adamw_step for step t (1 on the first step), as reference/adamw.py rounds them;
    max_norm and span as the grad_norm_partial dispatch that wrote the partials (grad_norm_values)."""
    norm = grad_norm_values(n, max_norm, span)
    return {"n": n, "lr": lr, "beta1": beta1, "beta2": beta2, "one_minus_beta1": 1.0 - beta1,
            "one_minus_beta2": 1.0 - beta2, "eps": eps, "weight_decay": weight_decay,
            "bc1": 1.0 - beta1**t, "bc2": 1.0 - beta2**t, "parts": norm["parts"], "max_norm": norm["max_norm"]}

# --- reduce.wgsl -----------------------------------------------------------------------------
REDUCE_UNIFORM = (("n", "u32"), ("slot", "u32"))
_register("reduce.wgsl", "mean_into_slot", [("x", READ), ("out", READ_WRITE), ("params", UNIFORM)],
          REDUCE_UNIFORM, [("WG", 256)], lambda v: (1, 1, 1))

# --- split_reduce.wgsl -----------------------------------------------------------------------
ADD_PARTS_UNIFORM = (("n", "u32"), ("count", "u32"), ("stride", "u32"))
_register("split_reduce.wgsl", "add_parts", [("parts", READ), ("out", READ_WRITE), ("params", UNIFORM)],
          ADD_PARTS_UNIFORM, [("WG", 256)], lambda v: grid_1d(v["n"], v["WG"]))

# --- matmul_coop.wgsl (mixed precision on subgroup matrices; rules: gpu/coop_rules.py) ----------
COOP_UNIFORM = (("N", "u32"), ("K", "u32"), ("M", "u32"), ("a_scale", "f32"), ("b_scale", "f32"), ("out_scale", "f32"),
                ("part_stride", "u32"), ("lda", "u32"), ("ldb", "u32"), ("ldy", "u32"), ("heads", "u32"),
                ("batches", "u32"), ("a_base", "u32"), ("a_bs", "u32"), ("a_hs", "u32"), ("b_base", "u32"),
                ("b_bs", "u32"), ("b_hs", "u32"), ("y_base", "u32"), ("y_bs", "u32"), ("y_hs", "u32"))
COOP_OVERRIDES = [("SG", 32), ("WY", 2), ("WX", 2), ("RT", 2), ("CT", 2), ("BK", 32), ("A_T", 0), ("B_T", 0), ("EPI", 0),
                  ("KSPLIT", 1), ("CAUSAL", 0), ("STRIDED", 0)]
COOP_CAUSAL = {"none": 0, "lower": 1, "a_lower": 2, "a_upper": 3}  # CAUSAL values (matmul_coop.wgsl's header)
COOP_EPILOGUES = {"store": 0, "relu": 1, "residual": 2, "relu_mask": 3}  # EPI values
_register("matmul_coop.wgsl", "matmul_coop",
          [("a", READ), ("b", READ), ("e", READ), ("y", READ_WRITE), ("parts", READ_WRITE), ("params", UNIFORM)],
          COOP_UNIFORM, COOP_OVERRIDES,
          lambda v: (ceil_div(v["M"], v["WX"] * v["CT"] * 16), ceil_div(v["N"], v["WY"] * v["RT"] * 16),
                     v["KSPLIT"] * v["batches"]))

# --- matmul_heads.wgsl (the fp32 step's materialised attention: gpu/materialized_attention.py) -------
_register("matmul_heads.wgsl", "matmul_heads", [("a", READ), ("b", READ), ("y", READ_WRITE), ("params", UNIFORM)],
          COOP_UNIFORM, [("A_T", 0), ("B_T", 0), ("CAUSAL", 0)],
          lambda v: (ceil_div(v["M"], 64), ceil_div(v["N"], 64), v["batches"]))

# --- attention.wgsl --------------------------------------------------------------------------
# D (head width) and BQ (query rows per tile) are overrides: gpu/attention_ops.py picks them.
ATTENTION_UNIFORM = (("B", "u32"), ("T", "u32"), ("C", "u32"), ("H", "u32"))
ATTENTION_DECODE_UNIFORM = (("C", "u32"), ("H", "u32"), ("Tmax", "u32"), ("pos", "u32"))
ATTENTION_OVERRIDES = [("D", 64), ("BQ", 8)]
_attn_grid = lambda v: (ceil_div(v["T"], v["BQ"]), v["H"], v["B"])  # noqa: E731  one (b, h, row tile) each
_register("attention.wgsl", "attention_forward",
          [("qkv", READ), ("y", READ_WRITE), ("lse", READ_WRITE), ("params", UNIFORM)],
          ATTENTION_UNIFORM, ATTENTION_OVERRIDES, _attn_grid)
_register("attention.wgsl", "attention_backward",  # query tiles (dq) then key tiles (dk, dv) along x
          [("dy", READ), ("qkv", READ), ("y", READ), ("lse", READ), ("dqkv", READ_WRITE), ("params", UNIFORM)],
          ATTENTION_UNIFORM, ATTENTION_OVERRIDES, lambda v: (2 * ceil_div(v["T"], v["BQ"]), v["H"], v["B"]))
_register("attention.wgsl", "attention_decode",
          [("qkv_row", READ), ("k_cache", READ_WRITE), ("v_cache", READ_WRITE), ("y_row", READ_WRITE),
           ("params", UNIFORM)],
          ATTENTION_DECODE_UNIFORM, ATTENTION_OVERRIDES, lambda v: (v["H"], 1, 1))
_register("attention.wgsl", "attention_kv_fill",  # a prefill's keys and values into the caches (batch 1)
          [("qkv", READ), ("k_cache", READ_WRITE), ("v_cache", READ_WRITE), ("params", UNIFORM)],
          (("T", "u32"), ("C", "u32"), ("H", "u32"), ("Tmax", "u32")), ATTENTION_OVERRIDES,
          lambda v: grid_1d(v["T"] * v["C"] // 4, 64))

# --- attention_softmax.wgsl (between the materialised attention's products: gpu/materialized_attention.py)
SOFTMAX_UNIFORM = (("rows", "u32"), ("T", "u32"))
_softmax_grid = lambda v: grid_1d(v["rows"] * 64, 64)  # noqa: E731  one workgroup of 64 per score row
_register("attention_softmax.wgsl", "attention_softmax_forward",
          [("s", READ_WRITE), ("lse", READ_WRITE), ("params", UNIFORM)], SOFTMAX_UNIFORM, [], _softmax_grid)
_register("attention_softmax.wgsl", "attention_softmax_backward",
          [("s", READ_WRITE), ("dp", READ_WRITE), ("lse", READ), ("params", UNIFORM)], SOFTMAX_UNIFORM, [],
          _softmax_grid)

# --- attention_rows.wgsl / attention_rows_backward.wgsl -----------------------------------------
# The same attention for wide heads (D >= 32) with one row per invocation, its row data in
# registers: same bindings and uniform as attention_forward / attention_backward (attention_ops picks).
# ROWS = query rows (= invocations) per workgroup, KT = keys per workgroup-memory tile.
_register("attention_rows.wgsl", "attention_rows_forward",
          [("qkv", READ), ("y", READ_WRITE), ("lse", READ_WRITE), ("params", UNIFORM)],
          ATTENTION_UNIFORM, [("D", 64), ("ROWS", 64), ("KT", 16)],
          lambda v: (ceil_div(v["T"], v["ROWS"]), v["H"], v["B"]))
_register("attention_rows_backward.wgsl", "attention_rows_backward",
          [("dy", READ), ("qkv", READ), ("y", READ), ("lse", READ), ("dqkv", READ_WRITE), ("params", UNIFORM)],
          ATTENTION_UNIFORM, [("D", 64), ("ROWS", 64), ("KT", 16), ("QT", 8)],
          lambda v: (ceil_div(v["T"], v["ROWS"])                                   # dq workgroups
                     + ceil_div(v["T"], v["ROWS"] // ceil_div(v["D"] // 4, 8)),   # dk/dv: ROWS / SPLIT keys
                     v["H"], v["B"]))

# attention_blocks.wgsl: attention_rows_forward as 64 x 64 block products (GPUs only: 25 KiB of
# workgroup memory; attention_ops picks it). Grid: a workgroup per 64 query rows.
_register("attention_blocks.wgsl", "attention_blocks_forward",
          [("qkv", READ), ("y", READ_WRITE), ("lse", READ_WRITE), ("params", UNIFORM)],
          ATTENTION_UNIFORM, [("D", 64)],
          lambda v: (ceil_div(v["T"], 64), v["H"], v["B"]))
# attention_blocks_backward.wgsl: the same backward as 64 x 64 block products (GPUs only: 40.5 KiB of
# workgroup memory; attention_ops picks it). Grid: a dq and a dk/dv workgroup per 64-row block.
_register("attention_blocks_backward.wgsl", "attention_blocks_backward",
          [("dy", READ), ("qkv", READ), ("y", READ), ("lse", READ), ("dqkv", READ_WRITE), ("params", UNIFORM)],
          ATTENTION_UNIFORM, [("D", 64)],
          lambda v: (2 * ceil_div(v["T"], 64), v["H"], v["B"]))

# --- federated.wgsl --------------------------------------------------------------------------
# A federated client's delta (f16, bit-exact with numpy) and the relay's update applied in f32.
FEDERATED_UNIFORM = (("n", "u32"),)
_pair_grid = lambda v: grid_1d(ceil_div(v["n"], 2), v["WG"])  # noqa: E731  one invocation per 2 elements
_register("federated.wgsl", "delta_f16",
          [("weights", READ), ("start", READ), ("delta", READ_WRITE), ("params", UNIFORM)],
          FEDERATED_UNIFORM, [("WG", 256)], _pair_grid)
_register("federated.wgsl", "apply_update_f16",
          [("update", READ), ("start", READ_WRITE), ("weights", READ_WRITE), ("params", UNIFORM)],
          FEDERATED_UNIFORM, [("WG", 256)], _pair_grid)


# --- choose_token.wgsl: the next token from one row of logits (gpu/token_choice.py) ------------
# One workgroup per row; both entries share the uniform (V is the real vocabulary, not the padding).
CHOOSE_UNIFORM = (("V", "u32"), ("temperature", "f32"), ("top_k", "u32"), ("top_p", "f32"), ("key", "u32"),
                  ("step", "u32"))
for _name in ("choose_token_greedy", "choose_token_sample"):
    _register("choose_token.wgsl", _name, [("logits", READ), ("out", READ_WRITE), ("params", UNIFORM)],
              CHOOSE_UNIFORM, [("WG", 256)], lambda v: (1, 1, 1))


# --- matmul_direct.wgsl: the linear layer's backward without workgroup memory (CPU adapters) ----
# Same bindings and uniform as matmul_backward(_relu), so an executor can substitute it by name
# (ADAPTER_KERNELS); one invocation per 4 x 4 output block, dx blocks then dw blocks.
def _direct_backward_grid(v) -> Grid:
    blocks = ceil_div(v["N"], 4) * ceil_div(v["K"], 4) + ceil_div(v["K"], 4) * ceil_div(v["M"], 4)
    return grid_1d(blocks, v["WG"])


for _name in ("matmul_backward_direct", "matmul_backward_relu_direct"):
    _register("matmul_direct.wgsl", _name,
              [("x", READ), ("w", READ), ("dy", READ), ("dx", READ_WRITE), ("dw", READ_WRITE), ("params", UNIFORM)],
              MATMUL_UNIFORM, [("WG", 64)], _direct_backward_grid)
_direct_forward_grid = lambda v: grid_1d(ceil_div(v["N"], 4) * ceil_div(v["M"], 4), v["WG"])  # noqa: E731
_register("matmul_direct.wgsl", "matmul_forward_residual_direct",
          [("x", READ), ("w", READ), ("res", READ), ("y", READ_WRITE), ("params", UNIFORM)],
          MATMUL_UNIFORM, [("WG", 64)], _direct_forward_grid)
for _name in ("matmul_forward_rmsnorm_direct", "matmul_forward_rmsnorm_relu_direct"):
    _register("matmul_direct.wgsl", _name,
              [("x", READ), ("w", READ), ("g", READ), ("y", READ_WRITE), ("xn", READ_WRITE), ("rstd", READ_WRITE),
               ("params", UNIFORM)],
              MATMUL_NORM_UNIFORM, [("WG", 64)], _direct_forward_grid)


# --- matvec.wgsl, matvec_f16.wgsl: products against weights stored as rows (GPT-2, gpu/gpt2_model.py) ---
# y (N,M) = epilogue(x (N,K) @ w[:M].T + b), w stored (Mp,K) in f32 (matvec.wgsl) or f16 (matvec_f16.wgsl,
# entries named _f16: two f16 per u32, core WGSL); K % 4 == 0. Overrides: matmul_rules.matvec_rows_overrides.
# pack_rows*: a chunk of a (K,M) f32 matrix's rows into that layout and type (gpu/gpt2_weights.py).
MATVEC_OVERRIDES = [("WG", 64), ("LANES", 8)]
MATVEC_BIAS = [("x", READ), ("w", READ), ("b", READ), ("y", READ_WRITE), ("params", UNIFORM)]
MATVEC_BIAS_RESIDUAL = [("x", READ), ("w", READ), ("b", READ), ("res", READ), ("y", READ_WRITE), ("params", UNIFORM)]
PACK_UNIFORM = (("n", "u32"), ("M", "u32"), ("K", "u32"), ("row0", "u32"))
LN_MATMUL_UNIFORM = (("N", "u32"), ("K", "u32"), ("M", "u32"), ("eps", "f32"))  # the _ln entries
PACK_BINDINGS = [("src", READ), ("dst", READ_WRITE), ("params", UNIFORM)]
_matvec_rows_grid = lambda v: grid_1d(ceil_div(v["M"], v["WG"] // v["LANES"]) * v["WG"], v["WG"])  # noqa: E731
for _file, _suffix in (("matvec.wgsl", ""), ("matvec_f16.wgsl", "_f16")):
    _register(_file, "matvec_rows" + _suffix, _MM3("x", "w", "out"), MATMUL_UNIFORM, MATVEC_OVERRIDES,
              _matvec_rows_grid)
    for _name in ("matvec_rows_bias", "matvec_rows_bias_gelu"):
        _register(_file, _name + _suffix, MATVEC_BIAS, MATMUL_UNIFORM, MATVEC_OVERRIDES, _matvec_rows_grid)
    _register(_file, "matvec_rows_bias_residual" + _suffix, MATVEC_BIAS_RESIDUAL, MATMUL_UNIFORM, MATVEC_OVERRIDES,
              _matvec_rows_grid)
    for _name in ("matvec_rows_ln_bias", "matvec_rows_ln_bias_gelu"):
        _register(_file, _name + _suffix, [("x", READ), ("g", READ), ("beta", READ), ("w", READ), ("b", READ),
                                           ("y", READ_WRITE), ("params", UNIFORM)],
                  LN_MATMUL_UNIFORM, MATVEC_OVERRIDES, _matvec_rows_grid)
_register("matvec.wgsl", "pack_rows_transposed", PACK_BINDINGS, PACK_UNIFORM, MATVEC_OVERRIDES,
          lambda v: grid_1d(v["n"], v["WG"]))
for _name in ("pack_rows_transposed_f16", "pack_rows_f16"):  # one invocation per u32 (two f16) written
    _register("matvec_f16.wgsl", _name, PACK_BINDINGS, PACK_UNIFORM, MATVEC_OVERRIDES,
              lambda v: grid_1d(ceil_div(v["n"], 2), v["WG"]))
_register("matvec_f16.wgsl", "embedding_forward_f16",
          [("idx", READ), ("wte", READ), ("wpe", READ), ("x", READ_WRITE), ("params", UNIFORM)],
          EMB_UNIFORM, MATVEC_OVERRIDES, lambda v: grid_1d(v["B"] * v["T"] * v["C"], v["WG"]))


# --- per-adapter override table ----------------------------------------------------------------
# Override values that replace the defaults (and the callers' choices) on one kind of adapter;
# an executor applies them to every dispatch and pipeline (Executor.override_table), natively as in
# the browser (gpu/adapter_inputs.py). SwiftShader (Chrome's WebGPU on the CPU) runs a workgroup's invocations 4 at a time
# as coroutines that switch at every barrier, so the row reductions (one workgroup per row, a tree
# of barriers) want few invocations. Measured per dispatch of a nano step (batch 8; each dispatch
# replayed alone and timed) in headless Chromium 156 on 2 busy cores, 2026-11-22, with the tests'
# flags (tests/_browser.py): crossentropy_forward_backward 164 -> 8 ms, the 3 rmsnorm_forward
# 59 -> 8 ms, the forward matmuls 36 -> 21 ms (noisy: +-30%); the backward matmuls stay 64 x 64
# (41 ms; 59 ms at 32 x 32, 99 ms at 128 x 128). A whole step: 365 -> 130-145 ms.
_SMALL_ROWS = {"WG": 8}
_MATMUL_FORWARD_SMALL = {"TM": 32, "TN": 32}
ADAPTER_OVERRIDES: dict[str, dict[str, dict[str, int]]] = {
    "swiftshader": {
        "rmsnorm_forward": _SMALL_ROWS, "rmsnorm_backward": _SMALL_ROWS,
        "crossentropy_forward_backward": {"WG": 16}, "crossentropy_forward": {"WG": 16},
        "mean_into_slot": {"WG": 32},
        "adamw_step": {"WG": 64, "PER_INV": 32}, "grad_norm_partial": {"WG": 64},
        "matmul_forward": _MATMUL_FORWARD_SMALL,  # with dropout only; the model's other matmuls: ADAPTER_KERNELS
    },
}


# Kernels replaced by another with the same bindings and uniform on one kind of adapter (the
# caller's override values are dropped: they belong to the kernel replaced). Executor.kernel_table.
ADAPTER_KERNELS: dict[str, dict[str, str]] = {
    "swiftshader": {name: name + "_direct" for name in (
        "matmul_backward", "matmul_backward_relu", "matmul_forward_residual", "matmul_forward_rmsnorm",
        "matmul_forward_rmsnorm_relu")},
}


# The vec4-load twins follow their scalar entry on every adapter (the tables above name the scalar
# entries): the same forced overrides, the same substitute kernel.
for _tables in (ADAPTER_OVERRIDES, ADAPTER_KERNELS):
    for _arch, _table in _tables.items():
        _tables[_arch] = with_vec4_twins(_table)


def adapter_kernels(adapter_info: Mapping[str, object]) -> dict[str, str]:
    """The kernel substitution table for an adapter, by its architecture; {} if none."""
    return ADAPTER_KERNELS.get(str(adapter_info.get("architecture") or "").lower(), {})


def adapter_overrides(adapter_info: Mapping[str, object]) -> dict[str, dict[str, int]]:
    """The override table for an adapter, by its architecture (e.g. "swiftshader"); {} if none."""
    return ADAPTER_OVERRIDES.get(str(adapter_info.get("architecture") or "").lower(), {})
