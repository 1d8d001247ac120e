"""The GPU kernels lesson: the numbers of OUR matmul (shaders/matmul.wgsl) and a timing recipe for it.

    tiles = matmul_tiles(registry.shader_source("matmul.wgsl"), N, K, M)  # the tile used at this shape
    stats = tiling_stats(N, K, M, tiles)        # grid, storage loads saved by tiling, ...
    meta = timing_case(N, K, M)                 # for parity_runner.time_case(ex, meta, b"")
    cases = cases_for_timing(index, meta)       # the bench's matmul.wgsl cases that check those pipelines

Everything is read from what runs: tile constants and workgroup size from the .wgsl text (never a
copy), the tile chosen for a shape and the dispatch grid from the kernel registry both hosts use.
When the kernel changes, the lesson's numbers follow (and a shape this module cannot read is an
error, not a silent guess). Pure Python: runs in the page (Pyodide) and in the unit tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..gpu import matmul_rules, registry

SHADER = "matmul.wgsl"
SIZES = (64, 128, 256, 512, 1024, 2048)  # square shapes the page offers to time
F32 = 4  # bytes
WGSL_BYTES = {"f32": 4, "u32": 4, "vec4<f32>": 16}


@dataclass(frozen=True)
class MatmulTiles:
    TM: int  # output rows per workgroup
    TN: int  # output columns per workgroup
    TK: int  # inner-dimension slice loaded into workgroup memory per step
    wg_x: int  # invocations per workgroup, x
    wg_y: int  # invocations per workgroup, y
    workgroup_bytes: int  # var<workgroup> arrays, in bytes
    overrides: tuple[tuple[str, int], ...] = ()  # pipeline overrides that select this tile

    @property
    def invocations(self) -> int:
        return self.wg_x * self.wg_y

    @property
    def outputs_per_invocation(self) -> int:
        return self.TM * self.TN // self.invocations


def tile_overrides(kernel: str, *outputs: tuple[int, int]) -> dict[str, int]:
    """The {"TM", "TN"} overrides gpu/matmul_rules.py picks for a dispatch of `kernel` writing these
    (rows, cols) outputs on any adapter; {} when the kernel has no tile overrides (fixed tiles)."""
    if "TM" not in dict(registry.get(kernel).overrides):
        return {}
    return dict(matmul_rules.matmul_tiles(*outputs))


def _select(false_value: int, true_value: int, condition: bool) -> int:
    """WGSL's select(f, t, cond): t where cond holds, else f."""
    return true_value if condition else false_value


def _eval_u32(expr: str, values: dict[str, int]) -> int:
    """A WGSL constant expression of integers, names in `values`, min/max/select, == and + - * / ( ) (as
    in @workgroup_size(TN / RPI, TM / RPI) or select(min(8u, min(TM, TN) / 8u), ..., RPI == 4u)), with
    integer division."""
    text = re.sub(r"\b(\d+)u\b", r"\1", expr)
    def value(m: re.Match) -> str:
        if m.group(0) not in values:
            raise ValueError(f"cannot evaluate {expr!r}: {m.group(0)!r} is not a known constant")
        return str(values[m.group(0)])

    text = re.sub(r"\b(?!min\b|max\b|select\b)[A-Za-z_]\w*\b", value, text)
    if not re.fullmatch(r"(?:[\d\s+\-*/(),]|==|min|max|select)+", text):
        raise ValueError(f"cannot evaluate {expr!r}")
    scope = {"__builtins__": {}, "min": min, "max": max, "select": _select}
    return int(eval(text.replace("/", "//"), scope))  # noqa: S307


def matmul_tiles(source: str, N: int, K: int, M: int) -> MatmulTiles:
    """The tile of matmul_forward at y (N,M) = x (N,K) @ w (K,M): constants and workgroup size
    parsed from the shader's text, the tile override the registry picks for this shape."""
    declared = re.findall(r"(const|override)\s+(\w+)\s*:\s*u32\s*=\s*([^;]+?)\s*;", source)
    overridable = {name for kind, name, _ in declared if kind == "override"}
    overrides = {k: v for k, v in tile_overrides("matmul_forward", (N, M)).items() if k in overridable}
    values: dict[str, int] = {}
    for _, name, expr in declared:  # in source order: an initializer may use earlier names (TK from TM, TN)
        values[name] = overrides[name] if name in overrides else _eval_u32(expr, values)
    size = re.search(r"@workgroup_size\(([^)]*)\)\s*fn\s+matmul_forward\s*\(", source)
    # array sizes are numbers or override expressions (2u * TK * A_ROW4: sized by the tile)
    shared = re.findall(r"var<workgroup>\s+\w+\s*:\s*array<\s*(f32|u32|vec4<f32>)\s*,\s*([^;]+?)\s*>\s*;", source)
    missing = [n for n in ("TM", "TN", "TK") if n not in values] + ([] if size else ["@workgroup_size"])
    if missing or not shared:
        raise ValueError(f"{SHADER} no longer declares what this lesson reads ({missing or 'workgroup arrays'})")
    wg = [_eval_u32(e, values) for e in size.group(1).split(",")] + [1, 1]
    return MatmulTiles(values["TM"], values["TN"], values["TK"], wg[0], wg[1],
                       sum(WGSL_BYTES[t] * _eval_u32(n, values) for t, n in shared), tuple(sorted(overrides.items())))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class TilingStats:
    grid: tuple[int, int, int]  # workgroups dispatched (x, y, z), from the kernel registry
    workgroups: int
    invocations: int  # all invocations, including those past the edges that store nothing
    flops: int  # 2 N K M: one multiply and one add per (output, inner index)
    naive_loads: int  # f32 loads from storage if every output read its row of x and column of w
    tiled_loads: int  # f32 loads from storage with the tiles: each workgroup loads each slice once
    steps: int  # inner-dimension slices each workgroup walks through (ceil(K / TK))

    @property
    def reuse(self) -> float:
        """How many times fewer storage loads the tiles need (each loaded value is used this often)."""
        return self.naive_loads / self.tiled_loads


def tiling_stats(N: int, K: int, M: int, tiles: MatmulTiles) -> TilingStats:
    """What one matmul_forward dispatch does for y (N,M) = x (N,K) @ w (K,M) with these tiles."""
    dims = {"N": N, "K": K, "M": M, "accumulate": 0}
    grid = registry.get("matmul_forward").workgroups(dims, dict(tiles.overrides) or None)
    if tuple(grid) != (_ceil_div(M, tiles.TN), _ceil_div(N, tiles.TM), 1):
        raise ValueError(f"the registry's grid {grid} does not tile y ({N}, {M}) by {tiles.TM} x {tiles.TN}")
    workgroups = grid[0] * grid[1] * grid[2]
    steps = _ceil_div(K, tiles.TK)
    per_step = tiles.TM * tiles.TK + tiles.TK * tiles.TN  # one slice of each operand's tile
    return TilingStats(tuple(grid), workgroups, workgroups * tiles.invocations, 2 * N * K * M,
                       naive_loads=2 * N * K * M, tiled_loads=workgroups * steps * per_step, steps=steps)


def is_matmul_kernel(name: str) -> bool:
    return name in registry.KERNELS and registry.get(name).file == SHADER


def matmul_parity_cases(index: dict) -> list[dict]:
    """The parity index's cases that test only matmul.wgsl's kernels (what the bench runs for it)."""
    return [m for m in index["cases"] if m["kernels"] and all(is_matmul_kernel(k) for k in m["kernels"])]


def pipelines(steps: list[dict]) -> set[tuple[str, tuple[tuple[str, int | float], ...]]]:
    """(kernel, resolved overrides) of every dispatch: the compiled pipelines a recipe uses."""
    return {(s["kernel"], tuple(sorted(registry.get(s["kernel"]).resolve_overrides(s.get("overrides")).items())))
            for s in steps if s["op"] == "dispatch"}


def cases_for_timing(index: dict, meta: dict) -> list[dict]:
    """The matmul parity cases that exercise a pipeline `meta` times ("check what you time"); all of
    them if none does. Compiling pipelines dominates on CPU WebGPU, so the page checks only these
    (the bench page runs every case)."""
    cases = matmul_parity_cases(index)
    timed = pipelines(meta["steps"])
    return [m for m in cases if pipelines(m["steps"]) & timed] or cases


def timing_case(N: int, K: int, M: int) -> dict:
    """A parity_runner case with no expected outputs: the matmuls of one linear layer's training step.

    Forward y = x @ w, then the backward's dx and dw: one fused dispatch where the registry has
    `matmul_backward`, else matmul_backward_dx and matmul_backward_dw. Tile overrides are the
    registry's picks for the shape (what training uses). Inputs are filled with a constant (timing
    does not depend on the values); the blob is empty."""
    if min(N, K, M) <= 0:
        raise ValueError("matmul shapes must be positive")
    shapes = {"x": N * K, "w": K * M, "dy": N * M, "y": N * M, "dx": N * K, "dw": K * M}
    dims = {"N": N, "K": K, "M": M, "accumulate": 0}
    flops = 2 * N * K * M

    def step(kernel: str, bound: list[str], products: int, *outputs: tuple[int, int]) -> dict:
        out = {"op": "dispatch", "kernel": kernel, "buffers": bound, "params": dict(dims), "flops": products * flops,
               "bytes": F32 * sum(shapes[b] for b in bound)}
        overrides = tile_overrides(kernel, *outputs)
        if overrides:
            out["overrides"] = overrides
        return out

    steps = [step("matmul_forward", ["x", "w", "y"], 1, (N, M))]
    if "matmul_backward" in registry.KERNELS:
        steps.append(step("matmul_backward", ["x", "w", "dy", "dx", "dw"], 2, (N, K), (K, M)))
    else:
        steps += [step("matmul_backward_dx", ["dy", "w", "dx"], 1, (N, K)),
                  step("matmul_backward_dw", ["x", "dy", "dw"], 1, (K, M))]
    return {"name": f"{N}x{K}x{M}", "kernels": sorted({s["kernel"] for s in steps}), "file": "", "nbytes": 0,
            "buffers": [{"name": name, "nbytes": F32 * n, "fill": 0.5} for name, n in shapes.items()],
            "steps": steps, "outputs": []}
