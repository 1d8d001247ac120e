"""What the GPU kernels lesson shows, as HTML strings (rows of results reuse the bench page's)."""

from __future__ import annotations

from html import escape

from .gpu_kernels import MatmulTiles, TilingStats


def _int(n: int) -> str:
    return f"{n:,}"


def tiles_text(t: MatmulTiles) -> str:
    """One sentence of the tile read from matmul.wgsl (and the registry's override pick)."""
    picked = (" (override " + ", ".join(f"{k} = {v}" for k, v in t.overrides) + ", the registry's pick for this shape)"
              if t.overrides else "")
    return (f"{t.TM} × {t.TN} outputs per workgroup{picked}, {t.wg_x} × {t.wg_y} = {t.invocations} invocations "
            f"each computing {t.outputs_per_invocation} outputs, inner slices of {t.TK}, "
            f"{t.workgroup_bytes / 1024:.1f} KiB of workgroup memory")


def stats_table(N: int, K: int, M: int, s: TilingStats) -> str:
    """<table> of what one matmul_forward dispatch at (N, K, M) does."""
    rows = [
        ("shape", f"x ({N}, {K}) @ w ({K}, {M}) → y ({N}, {M})"),
        ("workgroups (grid)", f"{s.grid[0]} × {s.grid[1]} = {_int(s.workgroups)}"),
        ("invocations", _int(s.invocations)),
        ("inner steps per workgroup", f"{s.steps} (each: load a slice of both tiles, barrier, multiply-add, barrier)"),
        ("floating-point operations", _int(s.flops)),
        ("storage loads without tiles", _int(s.naive_loads)),
        ("storage loads with tiles", _int(s.tiled_loads)),
        ("each loaded value used", f"{s.reuse:.1f} times"),
    ]
    body = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table data-shape="{N}x{K}x{M}"><tbody>{body}</tbody></table>'
