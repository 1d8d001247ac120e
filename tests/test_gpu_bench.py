"""`tabgpt bench --backend gpu` pieces on the native adapter (llvmpipe in CI): gate, GEMM, step timing."""

import time

import numpy as np
import pytest

from _gpu import gpu  # noqa: F401  (fixture)
from pyscript_app.config import preset
from pyscript_app.gpu import bench, parity_cases

pytestmark = pytest.mark.gpu


def test_gemm_shapes_are_the_models_matmuls():
    shapes = bench.gemm_shapes(["nano"], 64)
    c = preset("nano")
    N = 8 * c.block_size
    assert shapes == [("nano qkv", N, 16, 48), ("nano fc", N, 16, 64), ("nano fc_proj", N, 64, 16),
                      ("nano lm_head", N, 16, 1024), ("64^3", 64, 64, 64)]


def test_gate_runs_every_parity_case_the_device_can_and_passes(gpu):  # noqa: F811
    """Every case whose kernels fit this device's workgroup memory (the GPU-only ones' cases as far as
    they fit) runs and passes."""
    results, metas, _ = bench.gate(gpu)
    fits = parity_cases.build_bundle(workgroup_bytes=gpu.max_workgroup_bytes).index["cases"]
    assert [r.name for r in results] == [m["name"] for m in fits] == [m["name"] for m in metas]
    assert len(results) > 20
    assert {c.name for c in parity_cases.CASES} - {r.name for r in results} == {
        c.name for c in parity_cases.CASES if c.workgroup_bytes > gpu.max_workgroup_bytes or c.needs_coop}
    assert all(r.passed for r in results), [r.name for r in results if not r.passed]


def test_step_timing_counts_dispatches_per_layer(gpu):  # noqa: F811
    ms, dispatches = bench.time_gpu_step(gpu, "nano", repeats=1)
    assert ms > 0
    assert dispatches == 10 + 12 * preset("nano").n_layer  # gpu/model_ops.py: fused epilogues and backwards


def test_matmul_timing_is_positive(gpu):  # noqa: F811
    assert bench._time_matmul(gpu, 33, 17, 65, reps=2) > 0


def test_gemm_repeats_hold_enough_work_per_timed_run():
    """Each timed GEMM run holds >= 4e11 FLOP (or 200 dispatches), and never fewer than 3 dispatches, so the
    closing read-back is a small share of what is timed."""
    assert bench.gemm_repeats(2 * 4096 ** 3) == 3
    assert bench.gemm_repeats(2 * 2048 * 512 * 2048) == 94
    assert bench.gemm_repeats(2 * 256 * 64 * 192) == 200
    for flops in (2, 10 ** 6, 10 ** 9, 3 * 10 ** 9, 10 ** 11, 10 ** 12, 10 ** 13):
        r = bench.gemm_repeats(flops)
        assert 3 <= r <= 200 and (r * flops >= 4e11 or r == 200)


def test_gemm_table_rows_name_the_tiles_and_dispatches_they_timed(gpu):  # noqa: F811
    rows = bench.gemm_table(gpu, None, "cpu", ["nano"], 0, warm_up_s=0.05)
    assert [r["shape"] for r in rows] == [s[0] for s in bench.gemm_shapes(["nano"], 0)]
    for r in rows:
        assert r["ours_ms"] > 0 and r["torch_ms"] is None
        assert {"TM", "TN"} <= set(r["overrides"]) and r["dispatches_per_run"] == 200  # nano: tiny products


def test_the_warm_up_runs_products_for_its_time_and_at_least_once(gpu):  # noqa: F811
    t0 = time.perf_counter()
    assert bench.warm_up(gpu, None, "cpu", 0.0) == 1  # no time asked: still one run
    runs = bench.warm_up(gpu, None, "cpu", 0.3)
    assert runs >= 1 and time.perf_counter() - t0 >= 0.3


class _NumpyTorch:
    """Enough of torch for the bench's PyTorch side, on numpy: counts the products it is asked for."""

    def __init__(self):
        self.products = 0

    def randn(self, *shape, device=None):
        return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)

    def matmul(self, a, b):
        self.products += 1
        return a @ b


def test_the_warm_up_and_the_table_time_pytorch_too_when_it_is_there(gpu):  # noqa: F811
    fake = _NumpyTorch()
    assert bench.warm_up(gpu, fake, "cpu", 0.0) == 1 and fake.products == 3
    [row] = [r for r in bench.gemm_table(gpu, fake, "cpu", ["nano"], 0, warm_up_s=0.0) if r["shape"] == "nano qkv"]
    assert row["torch_ms"] > 0 and row["rate_ratio_ours_over_torch"] == row["torch_ms"] / row["ours_ms"]
