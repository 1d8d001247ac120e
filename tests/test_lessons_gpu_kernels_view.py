"""pyscript_app/lessons/gpu_kernels_view.py: the tiling sentence and the per-shape table."""

from __future__ import annotations

from pyscript_app.lessons.gpu_kernels import MatmulTiles, tiling_stats
from pyscript_app.lessons.gpu_kernels_view import stats_table, tiles_text

TILES = MatmulTiles(TM=64, TN=64, TK=8, wg_x=8, wg_y=16, workgroup_bytes=4096)


def test_tiles_text_states_the_shader_constants():
    text = tiles_text(TILES)
    assert "64 × 64 outputs per workgroup" in text and "8 × 16 = 128 invocations" in text
    assert "each computing 32 outputs" in text and "inner slices of 8" in text and "4 KiB" in text


def test_stats_table_shows_the_shape_grid_and_reuse():
    s = tiling_stats(256, 128, 512, TILES)
    html = stats_table(256, 128, 512, s)
    assert 'data-shape="256x128x512"' in html
    assert f"{s.grid[0]} × {s.grid[1]} = {s.workgroups:,}" in html
    assert f"{s.flops:,}" in html and f"{s.reuse:.1f} times" in html
