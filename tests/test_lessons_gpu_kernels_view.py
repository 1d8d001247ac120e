"""pyscript_app/lessons/gpu_kernels_view.py: the tiling sentence and the per-shape table."""

from __future__ import annotations

from pyscript_app.gpu import registry
from pyscript_app.lessons.gpu_kernels import MatmulTiles, matmul_tiles, tiling_stats
from pyscript_app.lessons.gpu_kernels_view import stats_table, tiles_text


def test_tiles_text_states_the_tile_and_the_override_pick():
    t = MatmulTiles(TM=64, TN=32, TK=8, wg_x=8, wg_y=16, workgroup_bytes=6144, overrides=(("TM", 64), ("TN", 32)))
    text = tiles_text(t)
    assert "64 × 32 outputs per workgroup (override TM = 64, TN = 32" in text
    assert "8 × 16 = 128 invocations" in text and "each computing 16 outputs" in text
    assert "inner slices of 8" in text and "6.0 KiB" in text
    assert "override" not in tiles_text(MatmulTiles(64, 64, 16, 16, 16, 8192))


def test_stats_table_shows_the_shape_grid_and_reuse():
    t = matmul_tiles(registry.shader_source("matmul.wgsl"), 256, 128, 512)
    s = tiling_stats(256, 128, 512, t)
    html = stats_table(256, 128, 512, s)
    assert 'data-shape="256x128x512"' in html
    assert f"{s.grid[0]} × {s.grid[1]} = {s.workgroups:,}" in html
    assert f"{s.flops:,}" in html and f"{s.reuse:.1f} times" in html
