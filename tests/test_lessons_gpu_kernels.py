"""pyscript_app/lessons/gpu_kernels.py: matmul.wgsl's tiling numbers, and the timing recipe run natively."""

from __future__ import annotations

import math
from array import array

import pytest

from _gpu import gpu  # noqa: F401 - the native WebGPU executor fixture
from pyscript_app.gpu import parity_runner, registry
from pyscript_app.gpu.executor import run_sync
from pyscript_app.lessons.gpu_kernels import (MatmulTiles, _eval_u32, cases_for_timing, matmul_parity_cases,
                                              matmul_tiles, pipelines, timing_case, tiling_stats)

SOURCE = registry.shader_source("matmul.wgsl")

# A small stand-in shader: fixed tiles, or override tiles with an expression as workgroup size.
FIXED = """
const TM: u32 = 64u;
const TN: u32 = 32u;
const TK: u32 = 8u;
var<workgroup> a_tile: array<f32, 512>;
var<workgroup> b_tile: array<f32, 256>;
@compute @workgroup_size(8, 16)
fn matmul_forward(@builtin(workgroup_id) wid: vec3<u32>) {}
"""
OVERRIDES = FIXED.replace("const TM", "override TM").replace("const TN", "override TN").replace(
    "@workgroup_size(8, 16)", "@workgroup_size(TN / 4u, TM / 8u)").replace("array<f32, 512>", "array<vec4<f32>, 40>")


@pytest.mark.parametrize("n", [1, 64, 300, 2048])
def test_the_real_shaders_tile_is_consistent_with_the_registrys_grid(n):
    t = matmul_tiles(SOURCE, n, n, n)
    assert t.invocations * t.outputs_per_invocation == t.TM * t.TN
    assert t.TK > 0 and t.workgroup_bytes > 0
    s = tiling_stats(n, n, n, t)  # raises if the registry dispatches another tile
    assert s.grid == (math.ceil(n / t.TN), math.ceil(n / t.TM), 1)


def test_fixed_tiles_and_workgroup_memory_are_parsed():
    t = matmul_tiles(FIXED, 10, 10, 10)
    assert (t.TM, t.TN, t.TK, t.wg_x, t.wg_y) == (64, 32, 8, 8, 16)
    assert t.workgroup_bytes == 4 * (512 + 256) and t.outputs_per_invocation == 16


def test_override_tiles_evaluate_the_workgroup_size_expression():
    t = matmul_tiles(OVERRIDES, 10, 10, 10)
    assert (t.wg_x, t.wg_y) == (t.TN // 4, t.TM // 8)
    assert t.workgroup_bytes == 16 * 40 + 4 * 256


def test_workgroup_arrays_sized_by_override_expressions_follow_the_tile():
    sized = OVERRIDES.replace("const TK: u32 = 8u;", "const TK: u32 = 8u;\noverride ROW: u32 = TM / 4u + 1u;").replace(
        "array<f32, 256>", "array<f32, 2u * TK * ROW>")
    t = matmul_tiles(sized, 10, 10, 10)
    assert t.workgroup_bytes == 16 * 40 + 4 * 2 * t.TK * (t.TM // 4 + 1)


def test_the_real_shaders_workgroup_memory_shrinks_with_the_tile():
    small, big = matmul_tiles(SOURCE, 64, 64, 64), matmul_tiles(SOURCE, 4096, 4096, 4096)
    assert (small.TM, big.TM) == (64, 128)
    # a_tile + b_tile: 2 buffers x TK k-rows x (T/4 + 1) vec4; rstd_sh: TM f32
    assert small.workgroup_bytes == 2 * 16 * 2 * 8 * 17 + 4 * 64
    assert big.workgroup_bytes == 2 * 16 * 2 * 8 * 33 + 4 * 128


def test_a_shader_that_no_longer_declares_a_tile_is_reported_not_misread():
    with pytest.raises(ValueError):
        matmul_tiles(FIXED.replace("const TK: u32", "const TILE_K: u32"), 8, 8, 8)
    with pytest.raises(ValueError):
        matmul_tiles(FIXED.replace("fn matmul_forward", "fn other"), 8, 8, 8)


def test_workgroup_size_expressions_allow_only_arithmetic():
    assert _eval_u32("TN / 8u + 1", {"TN": 64}) == 9
    with pytest.raises(ValueError):
        _eval_u32("__import__", {"__import__": "os"})
    with pytest.raises(ValueError, match="TQ"):
        _eval_u32("TQ / 2u", {})
    # select(f, t, cond), as matmul_tiles.wgsl's TK: the k-slice depth follows RPI
    tk = "select(min(8u, min(TM, TN) / 8u), min(16u, min(TM, TN) / 4u), RPI == 4u)"
    assert _eval_u32(tk, {"TM": 64, "TN": 64, "RPI": 8}) == 8
    assert _eval_u32(tk, {"TM": 64, "TN": 64, "RPI": 4}) == 16
    assert _eval_u32(tk, {"TM": 32, "TN": 32, "RPI": 4}) == 8
    with pytest.raises(ValueError):
        _eval_u32("RPI = 4u", {"RPI": 8})


def test_tiling_stats_count_workgroups_and_loads():
    t = matmul_tiles(SOURCE, 100, 37, 130)
    s = tiling_stats(100, 37, 130, t)
    assert s.workgroups == math.ceil(130 / t.TN) * math.ceil(100 / t.TM)
    assert s.invocations == t.invocations * s.workgroups and s.flops == 2 * 100 * 37 * 130
    assert s.steps == math.ceil(37 / t.TK)
    assert s.tiled_loads == s.workgroups * s.steps * (t.TM + t.TN) * t.TK
    assert s.naive_loads == 2 * 100 * 37 * 130


def test_reuse_of_full_tiles_is_the_harmonic_mean_of_the_tile_edges():
    n = 1024
    t = matmul_tiles(SOURCE, n, n, n)
    assert tiling_stats(n, n, n, t).reuse == pytest.approx(2 / (1 / t.TM + 1 / t.TN))


def test_tiles_the_registry_does_not_dispatch_are_refused():
    t = matmul_tiles(SOURCE, 256, 256, 256)
    wrong = MatmulTiles(t.TM * 2, t.TN * 2, t.TK, t.wg_x, t.wg_y, t.workgroup_bytes, t.overrides)
    with pytest.raises(ValueError, match="registry"):
        tiling_stats(256, 256, 256, wrong)


def test_parity_cases_are_those_testing_only_matmul_kernels():
    index = {"cases": [{"name": "a", "kernels": ["matmul_forward", "matmul_backward_dw"]},
                       {"name": "b", "kernels": ["matmul_forward", "add"]},
                       {"name": "c", "kernels": ["matmul_backward_dw"]}, {"name": "d", "kernels": []},
                       {"name": "e", "kernels": ["not_a_kernel"]}]}
    assert [m["name"] for m in matmul_parity_cases(index)] == ["a", "c"]


def _dispatch(kernel: str, overrides: dict | None = None) -> dict:
    step = {"op": "dispatch", "kernel": kernel}
    return {**step, "overrides": overrides} if overrides else step


def test_pipelines_resolve_default_overrides_so_equal_pipelines_compare_equal():
    forward = registry.get("matmul_forward")
    defaults = dict(forward.overrides)
    assert pipelines([_dispatch("matmul_forward"), _dispatch("matmul_forward", defaults or None)]) == {
        ("matmul_forward", tuple(sorted(defaults.items())))}
    assert pipelines([{"op": "submit"}]) == set()


def test_cases_for_timing_are_those_sharing_a_timed_pipeline_else_all():
    meta = timing_case(64, 64, 64)
    timed_kernel = meta["steps"][0]["kernel"]
    shares = {"name": "shares", "kernels": [timed_kernel],
              "steps": [{**meta["steps"][0]}, {"op": "submit"}]}
    other = {"name": "other", "kernels": [timed_kernel], "steps": [_dispatch(timed_kernel, {"TM": 999, "TN": 999})]}
    if "TM" not in dict(registry.get(timed_kernel).overrides):  # fixed tiles: every pipeline is timed
        other["steps"] = [{"op": "submit"}]
    assert [m["name"] for m in cases_for_timing({"cases": [shares, other]}, meta)] == ["shares"]
    assert [m["name"] for m in cases_for_timing({"cases": [other]}, meta)] == ["other"]


def test_timing_case_covers_forward_and_backward_with_their_flops():
    N, K, M = 3, 5, 7
    meta = timing_case(N, K, M)
    steps = meta["steps"]
    assert steps[0]["kernel"] == "matmul_forward" and steps[0]["flops"] == 2 * N * K * M
    assert sum(s["flops"] for s in steps) == 3 * 2 * N * K * M  # y, dx and dw
    assert steps[0]["bytes"] == 4 * (N * K + K * M + N * M)
    assert meta["kernels"] == sorted({s["kernel"] for s in steps}) and meta["outputs"] == []
    with pytest.raises(ValueError):
        timing_case(0, 1, 1)


@pytest.mark.gpu
def test_timing_case_computes_the_products_and_times_them_on_a_real_executor(gpu):
    N, K, M = 9, 20, 33
    meta = timing_case(N, K, M)
    buffers = parity_runner.prepare_buffers(gpu, meta, b"")
    for step in meta["steps"]:
        parity_runner.record_step(gpu, step, buffers, b"")
    expected = {"y": (N * M, 0.25 * K), "dx": (N * K, 0.25 * M), "dw": (K * M, 0.25 * N)}  # inputs are all 0.5
    for name, (count, value) in expected.items():
        assert list(array("f", run_sync(gpu.read(buffers[name])))) == [value] * count, name
    for b in buffers.values():
        gpu.release(b)
    timings = run_sync(parity_runner.time_case(gpu, meta, b"", runs=1, target_ms=1.0, max_per_run=2))
    assert [t.kernel for t in timings] == [s["kernel"] for s in meta["steps"]]
    assert all(t.median_ms > 0 and t.gflops > 0 for t in timings)


def test_an_override_initialized_from_other_overrides_is_evaluated():
    from pyscript_app.lessons.gpu_kernels import _eval_u32
    assert _eval_u32("min(8u, min(TM, TN) / 8u)", {"TM": 128, "TN": 32}) == 4
    assert _eval_u32("min(8u, min(TM, TN) / 8u)", {"TM": 128, "TN": 128}) == 8
    with pytest.raises(ValueError):
        _eval_u32("TM; import os", {"TM": 1})
