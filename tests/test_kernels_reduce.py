"""shaders/reduce.wgsl (mean_into_slot) against numpy's mean.

Tolerance: rtol 1e-6 (f32 sums of up to a few thousand terms in a different order than numpy's
pairwise sum), atol 1e-7."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("n", [1, 255, 256, 257, 8 * 32 * 3 + 5])
def test_mean_into_slot_writes_only_its_slot(gpu, n):
    x = (np.random.default_rng(n).standard_normal(n) + 7.0).astype(np.float32)  # losses are positive
    out = empty(gpu, (5,), fill=-1.0)
    slot = n % 5
    gpu.dispatch("mean_into_slot", [upload(gpu, x), out], {"n": n, "slot": slot})
    got = download(gpu, out, (5,))
    expect = np.full(5, -1.0)
    expect[slot] = x.astype(np.float64).mean()
    assert_close(got, expect, 1e-7, 1e-6, f"mean of {n} into slot {slot}")


def test_mean_reads_only_the_first_n_elements(gpu):
    x = np.arange(1, 11, dtype=np.float32)
    out = empty(gpu, (1,))
    gpu.dispatch("mean_into_slot", [upload(gpu, x), out], {"n": 4, "slot": 0})
    assert_close(download(gpu, out, (1,)), np.array([2.5]), 0, 0, "mean of 1..4")
