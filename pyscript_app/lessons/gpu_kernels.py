"""The GPU kernels lesson: the numbers of OUR matmul (shaders/matmul.wgsl) and a timing recipe for it.

    tiles = matmul_tiles(registry.shader_source("matmul.wgsl"))   # read from the shader itself
    stats = tiling_stats(N, K, M, tiles)                           # grid, loads saved by tiling, ...
    cases = matmul_parity_cases(index)                             # the bench's matmul correctness cases
    meta = timing_case(N, K, M)                                    # for parity_runner.time_case(ex, meta, b"")

The tile sizes come from parsing the .wgsl file that runs (never a copy), and the grid from the
kernel registry both hosts dispatch with, so the lesson's numbers change when the kernel does.
Pure Python: runs in the page (Pyodide) and in the unit tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..gpu import registry

MATMUL_KERNELS = ("matmul_forward", "matmul_backward_dx", "matmul_backward_dw")
SIZES = (64, 128, 256, 512, 1024, 2048)  # square shapes the page offers to time
F32 = 4  # bytes


@dataclass(frozen=True)
class MatmulTiles:
    TM: int  # output rows per workgroup
    TN: int  # output columns per workgroup
    TK: int  # inner-dimension slice loaded into workgroup memory per step
    wg_x: int  # invocations per workgroup, x
    wg_y: int  # invocations per workgroup, y
    workgroup_bytes: int  # var<workgroup> arrays, in bytes

    @property
    def invocations(self) -> int:
        return self.wg_x * self.wg_y

    @property
    def outputs_per_invocation(self) -> int:
        return self.TM * self.TN // self.invocations


def matmul_tiles(source: str) -> MatmulTiles:
    """The tile constants, workgroup size and workgroup memory of matmul.wgsl, parsed from its text."""
    consts = {name: int(v) for name, v in re.findall(r"const\s+(\w+)\s*:\s*u32\s*=\s*(\d+)u\s*;", source)}
    sizes = re.findall(r"@workgroup_size\((\d+)\s*,\s*(\d+)", source)
    shared = re.findall(r"var<workgroup>\s+\w+\s*:\s*array<f32,\s*(\d+)>", source)
    missing = [n for n in ("TM", "TN", "TK") if n not in consts]
    if missing or not sizes or not shared:
        raise ValueError(f"matmul.wgsl no longer declares what this lesson reads ({missing or 'workgroup size/arrays'})")
    if len(set(sizes)) != 1:
        raise ValueError("matmul.wgsl's entry points disagree on the workgroup size")
    wx, wy = (int(s) for s in sizes[0])
    return MatmulTiles(consts["TM"], consts["TN"], consts["TK"], wx, wy, F32 * sum(int(n) for n in shared))


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
    """What matmul_forward does for y (N,M) = x (N,K) @ w (K,M)."""
    grid = registry.get("matmul_forward").workgroups({"N": N, "K": K, "M": M, "accumulate": 0})
    if tuple(grid) != (_ceil_div(M, tiles.TN), _ceil_div(N, tiles.TM), 1):
        raise ValueError(f"the registry's grid {grid} does not tile y ({N}, {M}) by {tiles.TM} x {tiles.TN}")
    workgroups = grid[0] * grid[1] * grid[2]
    steps = _ceil_div(K, tiles.TK)
    per_step = tiles.TM * tiles.TK + tiles.TK * tiles.TN  # one slice of each operand's tile
    return TilingStats(tuple(grid), workgroups, workgroups * tiles.invocations, 2 * N * K * M,
                       naive_loads=2 * N * K * M, tiled_loads=workgroups * steps * per_step, steps=steps)


def matmul_parity_cases(index: dict) -> list[dict]:
    """The parity index's cases that test only matmul kernels (what the bench runs for matmul.wgsl)."""
    return [m for m in index["cases"] if m["kernels"] and all(k in MATMUL_KERNELS for k in m["kernels"])]


def timing_case(N: int, K: int, M: int) -> dict:
    """A parity_runner case with no expected outputs, to time the three matmul entries at one shape.

    Inputs are filled with a constant (timing does not depend on the values); the blob is empty."""
    if min(N, K, M) <= 0:
        raise ValueError("matmul shapes must be positive")
    shapes = {"x": N * K, "w": K * M, "dy": N * M, "y": N * M, "dx": N * K, "dw": K * M}
    buffers = [{"name": name, "nbytes": F32 * n, "fill": 0.5} for name, n in shapes.items()]
    dims = {"N": N, "K": K, "M": M, "accumulate": 0}
    steps = [{"op": "dispatch", "kernel": kernel, "buffers": bound, "params": dict(dims), "flops": 2 * N * K * M,
              "bytes": F32 * sum(shapes[b] for b in bound)}
             for kernel, bound in zip(MATMUL_KERNELS, (["x", "w", "y"], ["dy", "w", "dx"], ["x", "dy", "dw"]))]
    return {"name": f"timing_{N}x{K}x{M}", "kernels": list(MATMUL_KERNELS), "file": "", "nbytes": 0,
            "buffers": buffers, "steps": steps, "outputs": []}
