"""pyscript_app/gpu/parity_runner.py without a GPU: comparisons, and whole cases from the real bundle
on a tiny CPU "executor" that implements the elementwise kernels in pure Python."""

from __future__ import annotations

import json
import math
import struct
from array import array

import pytest

from pyscript_app.gpu import parity_runner as pr
from pyscript_app.gpu.executor import Executor, run_sync
from pyscript_app.gpu.parity_cases import build_bundle


def f32(*xs: float) -> bytes:
    return array("f", xs).tobytes()


def f64(*xs: float) -> bytes:
    return array("d", xs).tobytes()


def test_compare_close_counts_elements_outside_atol_plus_rtol():
    check = pr.compare_close(f32(1.0, 2.0, 3.5, -4.0), f64(1.0, 2.001, 3.0, -4.0), atol=0.0, rtol=1e-3, what="y")
    assert (check.bad, check.worst_index) == (1, 2)
    assert check.got == 3.5 and check.expected == 3.0
    assert check.max_abs_err == pytest.approx(0.5)
    assert not check.passed


def test_compare_close_treats_nan_as_a_failure_with_infinite_error():
    check = pr.compare_close(f32(math.nan, 1.0), f64(0.0, 1.0), atol=1.0, rtol=1.0)
    assert check.bad == 1 and check.worst_index == 0 and check.max_abs_err == math.inf


def test_compare_close_passes_within_tolerance_and_reports_max_error():
    check = pr.compare_close(f32(1.0, 2.5), f64(1.0, 2.0), atol=0.5, rtol=0.0)
    assert check.passed and check.max_abs_err == 0.5 and check.worst_index == -1


def test_compare_bits_is_exact_including_nan_markers():
    nan = struct.pack("<I", 0x7FC00000)
    assert pr.compare_bits(nan + f32(1.0), nan + f32(1.0)).passed
    check = pr.compare_bits(f32(0.0) + f32(1.0), f32(-0.0) + f32(1.0))  # -0.0 == 0.0 but other bits
    assert check.bad == 1 and check.worst_index == 0


def test_compare_rejects_length_mismatch():
    with pytest.raises(pr.BundleError):
        pr.compare_close(f32(1.0), f64(1.0, 2.0), 0.0, 0.0)


class CpuExecutor(Executor):
    """Buffers are bytearrays; the elementwise kernels run in Python (u32 `n` is the uniform's first field)."""

    engine = "cpu-fake"

    def __init__(self, broken_relu: bool = False) -> None:
        super().__init__()
        self.broken_relu = broken_relu

    def _create_buffer(self, nbytes, usage, label):
        return bytearray(nbytes)

    def _write_buffer(self, handle, offset, data):
        handle[offset:offset + len(data)] = data

    async def _read_buffer(self, handle, offset, nbytes):
        return bytes(handle[offset:offset + nbytes])

    def _create_shader_module(self, code, label):
        return label

    def _create_bind_group_layout(self, accesses, label):
        return accesses

    def _create_pipeline_layout(self, bind_group_layout, label):
        return bind_group_layout

    def _create_pipeline(self, module, entry, layout, constants, label):
        return entry

    def _create_bind_group(self, layout, entries, label):
        return entries

    def _begin_encoder(self):
        return []

    def _begin_pass(self, encoder):
        return encoder

    def _set_pipeline(self, compute_pass, pipeline):
        compute_pass.append(("pipeline", pipeline))

    def _dispatch(self, compute_pass, bind_group, x, y, z):
        compute_pass.append(("dispatch", bind_group))

    def _end_compute_pass(self, compute_pass):
        pass

    def _copy(self, encoder, src, src_offset, dst, dst_offset, nbytes):
        raise NotImplementedError

    def _clear(self, encoder, handle, offset, nbytes):
        raise NotImplementedError

    def _submit(self, encoder):
        entry = None
        for op, arg in encoder:
            if op == "pipeline":
                entry = arg
                continue
            views = [array("f", bytes(h[o:o + s])) for h, o, s in arg[:-1]]
            n = struct.unpack_from("<I", arg[-1][0])[0]
            out = self._kernel(entry, views, n)
            handle, offset, _ = arg[-1 - (1 if entry != "add_inplace" else 2)]
            handle[offset:offset + 4 * n] = array("f", out[:n]).tobytes()

    def _kernel(self, entry, v, n):
        if entry == "relu_forward":
            return [x if (x > 0 or self.broken_relu) else 0.0 for x in v[0]]
        if entry == "relu_backward":
            return [dy if x > 0 else 0.0 for dy, x in zip(v[0], v[1])]
        if entry in ("add", "add_inplace"):
            return [a + b for a, b in zip(v[0], v[1])]
        raise KeyError(entry)


@pytest.fixture(scope="module")
def bundle():
    b = build_bundle()
    index = pr.load_index(json.loads(json.dumps(b.index)))  # as the browser gets it: through JSON
    return {m["name"]: m for m in index["cases"]}, b.blobs


def _case(bundle, prefix):
    metas, blobs = bundle
    meta = next(m for name, m in metas.items() if name.startswith(prefix))
    return meta, blobs[meta["file"]]


@pytest.mark.parametrize("prefix", ["relu_", "add_"])
def test_real_cases_pass_on_a_correct_cpu_executor(bundle, prefix):
    meta, blob = _case(bundle, prefix)
    result = run_sync(pr.run_case(CpuExecutor(), meta, blob))
    assert result.passed, result.describe()
    assert [c.what for c in result.checks] == [o["what"] for o in meta["outputs"]]


def test_a_wrong_kernel_fails_its_case(bundle):
    meta, blob = _case(bundle, "relu_")
    result = run_sync(pr.run_case(CpuExecutor(broken_relu=True), meta, blob))
    assert not result.passed
    y = result.checks[0]
    assert y.what == "relu y" and y.bad > 0 and y.expected == 0.0 and y.got < 0
    assert result.describe().startswith(f"FAIL {meta['name']}")


def test_errors_become_a_failed_result_not_an_exception(bundle):
    meta, blob = _case(bundle, "matmul_7x")  # the fake has no matmul
    result = run_sync(pr.run_case(CpuExecutor(), meta, blob))
    assert not result.passed and "KeyError" in result.error
    add_meta, add_blob = _case(bundle, "add_")
    truncated = run_sync(pr.run_case(CpuExecutor(), add_meta, add_blob[:-4]))
    assert not truncated.passed and "blob has" in truncated.error


def test_unknown_index_format_is_rejected():
    with pytest.raises(pr.BundleError):
        pr.load_index({"format": "something-else", "cases": []})


def test_timing_and_report_cover_only_passing_cases(bundle):
    ex = CpuExecutor()
    relu_meta, relu_blob = _case(bundle, "relu_")
    add_meta, add_blob = _case(bundle, "add_")
    good = run_sync(pr.run_case(ex, relu_meta, relu_blob))
    bad = pr.CaseResult(add_meta["name"], add_meta["kernels"], error="forced")
    timings = run_sync(pr.time_case(ex, relu_meta, relu_blob, runs=3, target_ms=1.0))
    timings += run_sync(pr.time_case(ex, add_meta, add_blob, runs=1, target_ms=1.0))
    assert [t.kernel for t in timings] == ["relu_forward", "relu_backward", "add", "add_inplace"]
    assert all(t.median_ms > 0 and t.bytes > 0 and t.gbps > 0 and t.gflops is None for t in timings)
    report = pr.report({"engine": ex.engine}, [good, bad], timings, date="today")
    assert report["summary"] == pr.summary_text([good, bad]) == "1 passed, 1 failed"
    assert {t["case"] for t in report["timings"]} == {relu_meta["name"]}
    json.dumps(report, allow_nan=False)  # the download must be strict JSON


def test_median():
    assert pr.median([3.0, 1.0, 2.0]) == 2.0 and pr.median([4.0, 1.0]) == 2.5
    with pytest.raises(ValueError):
        pr.median([])
