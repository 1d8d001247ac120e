"""Every parity case (pyscript_app/gpu/parity_cases.py) through the SAME pure runner the browser uses,
on the native executor; plus the table's coverage of the registry and the bundle's round trip."""

import json
import struct

import pytest

from _gpu import gpu  # noqa: F401
from pyscript_app.gpu import parity_runner, registry
from pyscript_app.gpu.executor import run_sync
from pyscript_app.gpu.parity_cases import CASES, INDEX_NAME, build_bundle, covered_kernels

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """Written to disk and read back, exactly as the site build ships it."""
    folder = tmp_path_factory.mktemp("refvectors")
    build_bundle(workgroup_bytes=None).write(folder)  # every case but the matrix units', the GPU-only ones too (they run on llvmpipe)
    index = parity_runner.load_index(json.loads((folder / INDEX_NAME).read_text(encoding="utf-8")))
    return index, {meta["name"]: (folder / meta["file"]).read_bytes() for meta in index["cases"]}


def test_every_registered_kernel_has_a_parity_case():
    missing = sorted(set(registry.KERNELS) - covered_kernels())
    assert not missing, f"kernels without a parity case (add one to gpu/parity_cases.py): {missing}"


def test_bundle_holds_every_case_whose_kernels_are_registered(bundle):
    index, _ = bundle
    assert [m["name"] for m in index["cases"]] == [c.name for c in CASES
                                                    if set(c.kernels) <= set(registry.KERNELS) and not c.needs_coop]
    assert len({c.name for c in CASES}) == len(CASES)


def test_only_a_device_opened_for_mixed_precision_gets_the_matrix_unit_cases():
    coop = {c.name for c in CASES if c.needs_coop}
    assert coop == {"matmul_coop_200x84x136", "attention_coop_B2_T72_C96_H3"}
    every = build_bundle(workgroup_bytes=None)
    assert {s["name"] for s in every.index["skipped"] if "needs" in s} == coop
    assert coop <= {m["name"] for m in build_bundle(workgroup_bytes=49152, coop=True).index["cases"]}


def test_bundles_leave_out_the_cases_their_device_has_too_little_workgroup_memory_for():
    """The site's bundle (WebGPU's default 16 KiB) holds no case of the GPU-only kernels; a device with
    more workgroup memory gets the cases that fit it, each left-out case names what it needs."""
    big = {c.name: c.workgroup_bytes for c in CASES if c.workgroup_bytes > 16384 and not c.needs_coop}
    assert set(big) == {"attention_B2_T70_C128_H2_blocks_forward", "attention_B2_T70_C128_H2_blocks",
                        "matmul_fused_70x100x68_tile32x32_r4_k4_v4", "matmul_split3_200x20x36_tile64x64_r4_v4"}
    site = build_bundle()
    assert not set(big) & {m["name"] for m in site.index["cases"]}
    assert {s["name"]: s["needs_workgroup_bytes"] for s in site.index["skipped"] if s["name"] in big} == big
    mid = build_bundle(workgroup_bytes=32768)  # the forward's 25 KiB fit, the backward's 40.5 KiB do not
    assert [s["name"] for s in mid.index["skipped"] if "needs" not in s] == ["attention_B2_T70_C128_H2_blocks"]
    assert [s["name"] for s in build_bundle(workgroup_bytes=49152).index["skipped"]] == [
        "matmul_coop_200x84x136", "attention_coop_B2_T72_C96_H3"]  # the matrix units' cases: needs_coop


def test_cases_with_unregistered_kernels_are_skipped_not_built():
    known = {k: None for k in registry.KERNELS if not k.startswith("matmul")}
    b = build_bundle(kernels=known, workgroup_bytes=None)
    skipped = {s["name"]: s for s in b.index["skipped"]}
    assert skipped and all(s["missing_kernels"] for s in skipped.values())
    assert all(all(k.startswith("matmul") for k in s["missing_kernels"]) for s in skipped.values())
    assert "attention_coop_B2_T72_C96_H3" in skipped  # a case is out when any of its kernels is
    assert not any(m["name"].startswith("matmul") for m in b.index["cases"])


@pytest.mark.parametrize("name", [c.name for c in CASES if not c.needs_coop])  # the matrix units': tabgpt bench's gate
def test_case_passes_on_the_native_executor(gpu, bundle, name):
    index, blobs = bundle
    meta = next(m for m in index["cases"] if m["name"] == name)
    result = run_sync(parity_runner.run_case(gpu, meta, blobs[name]))
    assert result.passed, result.describe()
    assert len(result.checks) == len(meta["outputs"])


def test_a_wrong_expectation_fails_with_its_worst_element(gpu, bundle):
    index, blobs = bundle
    meta = next(m for m in index["cases"] if m["name"] == "matmul_7x5x3")
    out = meta["outputs"][0]
    blob = bytearray(blobs[meta["name"]])
    start = out["expected"]["offset"] + 8 * 4  # float64 element 4 of y
    blob[start:start + 8] = struct.pack("<d", 1e3)  # far from any product of N(0,1) inputs
    result = run_sync(parity_runner.run_case(gpu, meta, bytes(blob)))
    assert not result.passed
    assert result.checks[0].bad == 1 and result.checks[0].worst_index == 4
    assert result.describe().startswith("FAIL matmul_7x5x3")


def test_timing_reports_each_kernel_of_a_passing_case(gpu, bundle):
    index, blobs = bundle
    meta = next(m for m in index["cases"] if m["name"] == "matmul_33x17x65")
    timings = run_sync(parity_runner.time_case(gpu, meta, blobs[meta["name"]], runs=2, target_ms=2))
    assert [t.kernel for t in timings] == ["matmul_forward", "matmul_backward_dx", "matmul_backward_dw"]
    for t in timings:
        assert t.median_ms > 0 and len(t.runs) == 2
        assert t.gflops and t.gflops > 0 and t.flops == 2 * 33 * 17 * 65
