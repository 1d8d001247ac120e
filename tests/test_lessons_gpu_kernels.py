"""pyscript_app/lessons/gpu_kernels.py: matmul.wgsl's tiling numbers, and the timing recipe run natively."""

from __future__ import annotations

import math
from array import array

import pytest

from _gpu import gpu  # noqa: F401 - the native WebGPU executor fixture
from pyscript_app.gpu import parity_runner, registry
from pyscript_app.gpu.executor import run_sync
from pyscript_app.lessons.gpu_kernels import (MATMUL_KERNELS, MatmulTiles, matmul_parity_cases, matmul_tiles,
                                              timing_case, tiling_stats)

SOURCE = registry.shader_source("matmul.wgsl")


def test_tiles_are_read_from_the_shader_and_agree_with_the_registry():
    t = matmul_tiles(SOURCE)
    assert t.TM == t.TN == registry.MATMUL_TILE
    assert t.invocations * t.outputs_per_invocation == t.TM * t.TN
    assert t.workgroup_bytes == 4 * (t.TK * t.TM + t.TK * t.TN)  # a_tile and b_tile, f32


def test_a_shader_that_changes_shape_is_reported_not_misread():
    with pytest.raises(ValueError):
        matmul_tiles(SOURCE.replace("const TK: u32", "const TILE_K: u32"))
    with pytest.raises(ValueError):
        matmul_tiles(SOURCE.replace("@workgroup_size(16, 16)\nfn matmul_forward", "@workgroup_size(8, 8)\nfn matmul_forward"))


@pytest.mark.parametrize("N,K,M", [(64, 64, 64), (100, 37, 130), (1, 1, 1)])
def test_tiling_stats_count_workgroups_and_loads(N, K, M):
    t = MatmulTiles(TM=64, TN=64, TK=16, wg_x=16, wg_y=16, workgroup_bytes=8192)
    s = tiling_stats(N, K, M, t)
    groups_x, groups_y = math.ceil(M / 64), math.ceil(N / 64)
    assert s.grid == (groups_x, groups_y, 1) and s.workgroups == groups_x * groups_y
    assert s.invocations == 256 * s.workgroups and s.flops == 2 * N * K * M
    assert s.steps == math.ceil(K / 16)
    assert s.tiled_loads == s.workgroups * s.steps * 2 * 64 * 16
    assert s.naive_loads == 2 * N * K * M


def test_tiles_the_registry_does_not_dispatch_are_refused():
    with pytest.raises(ValueError, match="registry"):
        tiling_stats(128, 16, 128, MatmulTiles(TM=32, TN=32, TK=16, wg_x=8, wg_y=8, workgroup_bytes=4096))


def test_reuse_of_full_tiles_is_the_harmonic_mean_of_the_tile_edges():
    t = matmul_tiles(SOURCE)
    s = tiling_stats(4 * t.TM, 4 * t.TK, 4 * t.TN, t)
    assert s.reuse == pytest.approx(2 / (1 / t.TM + 1 / t.TN))


def test_parity_cases_are_those_testing_only_matmul_kernels():
    index = {"cases": [{"name": "a", "kernels": ["matmul_forward", "matmul_backward_dw"]},
                       {"name": "b", "kernels": ["matmul_forward", "add"]},
                       {"name": "c", "kernels": ["matmul_backward_dw"]}, {"name": "d", "kernels": []}]}
    assert [m["name"] for m in matmul_parity_cases(index)] == ["a", "c"]


def test_timing_case_dispatches_each_entry_with_its_flops_and_bytes():
    meta = timing_case(3, 5, 7)
    assert [s["kernel"] for s in meta["steps"]] == list(MATMUL_KERNELS)
    assert all(s["flops"] == 2 * 3 * 5 * 7 for s in meta["steps"])
    assert meta["steps"][0]["bytes"] == 4 * (3 * 5 + 5 * 7 + 3 * 7)
    assert meta["outputs"] == [] and meta["nbytes"] == 0
    with pytest.raises(ValueError):
        timing_case(0, 1, 1)


@pytest.mark.gpu
def test_timing_case_runs_and_times_on_a_real_executor(gpu):
    N, K, M = 9, 20, 33
    meta = timing_case(N, K, M)
    buffers = parity_runner.prepare_buffers(gpu, meta, b"")
    for step in meta["steps"]:
        parity_runner.record_step(gpu, step, buffers, b"")
    y = array("f", run_sync(gpu.read(buffers["y"])))
    dw = array("f", run_sync(gpu.read(buffers["dw"])))
    assert list(y) == [0.5 * 0.5 * K] * (N * M)  # inputs are filled with 0.5
    assert list(dw) == [0.5 * 0.5 * N] * (K * M)
    for b in buffers.values():
        gpu.release(b)
    timings = run_sync(parity_runner.time_case(gpu, meta, b"", runs=1, target_ms=1.0, max_per_run=2))
    assert [t.kernel for t in timings] == list(MATMUL_KERNELS)
    assert all(t.median_ms > 0 and t.gflops > 0 for t in timings)
