"""A shared native WebGPU executor for the whole test session, plus numpy helpers for kernel tests.

The device is opened once per process (module-level cache, not a per-module fixture: fixtures
imported into several test modules would open several devices). $TABGPT_TEST_GPU picks the engine
(auto | dawn | wgpu-native; default auto). No adapter: skip locally, fail with CI=true.

    from _gpu import gpu, upload, download, assert_close   # `gpu` is the fixture
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from _require import module_available, require

_cached: dict[str, object] = {}


def _open():
    if "ex" not in _cached:
        from pyscript_app.gpu.executor import GpuUnavailable
        from pyscript_app.gpu.native import open_device

        try:
            _cached["ex"] = open_device(os.environ.get("TABGPT_TEST_GPU", "auto"))
        except GpuUnavailable as e:
            _cached["ex"] = None
            _cached["why"] = str(e)
    return _cached["ex"], _cached.get("why", "")


@pytest.fixture(scope="session")
def gpu():
    require(module_available("wgpu") or module_available("wgpudawn"), "neither wgpu nor wgpudawn is installed")
    ex, why = _open()
    require(ex is not None, f"no WebGPU adapter: {why}")
    return ex


def upload(ex, arr: np.ndarray, dtype=np.float32):
    """A storage buffer holding arr as contiguous `dtype` (at least 4 bytes)."""
    data = np.ascontiguousarray(arr, dtype=dtype)
    if data.nbytes == 0:
        data = np.zeros(1, dtype)
    return ex.upload(data.tobytes())


def empty(ex, shape, dtype=np.float32, fill: float | None = np.nan):
    """A storage buffer for an output of `shape`, pre-filled (NaN by default, so unwritten
    elements show up in comparisons)."""
    n = int(np.prod(shape))
    return upload(ex, np.full(max(n, 1), fill, dtype=dtype), dtype)


def download(ex, buf, shape, dtype=np.float32) -> np.ndarray:
    from pyscript_app.gpu.executor import run_sync

    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer(run_sync(ex.read(buf, n)), dtype=dtype).reshape(shape).copy()


def assert_close(got: np.ndarray, ref: np.ndarray, atol: float, rtol: float, what: str = "") -> None:
    """|got - ref| <= atol + rtol * |ref| elementwise, with the worst element in the message."""
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    err = np.abs(got - ref)
    bound = atol + rtol * np.abs(ref)
    bad = ~(err <= bound)  # NaN counts as bad
    if bad.any():
        i = np.unravel_index(int(np.argmax(np.where(bad, np.nan_to_num(err, nan=np.inf), -1))), got.shape)
        pytest.fail(f"{what}: {int(bad.sum())}/{got.size} elements off; worst at {i}: got {got[i]!r}, "
                    f"ref {ref[i]!r}, bound {bound[i]:.3g}", pytrace=False)
