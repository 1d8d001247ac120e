"""shaders/federated.wgsl against numpy: the f16 delta and the f32 update, bit for bit.

Tolerance: none. The relay hashes its weights after `W + decode(u)` in numpy; a client whose GPU
rounds one element differently diverges. So the conversions are checked over every finite f16 bit
pattern, every tie between neighbouring f16 values, and random f32 bit patterns of all magnitudes."""

import numpy as np
import pytest

from _gpu import download, empty, gpu, upload  # noqa: F401

pytestmark = pytest.mark.gpu

FINITE_F16 = np.arange(0x10000, dtype=np.uint32)
FINITE_F16 = FINITE_F16[(FINITE_F16 & 0x7C00) != 0x7C00].astype(np.uint16)  # 63488 patterns


def _pairs(halves: np.ndarray) -> np.ndarray:
    """(n,) f16 -> (ceil(n/2),) u32, element 2i in the low half."""
    return np.concatenate([halves.astype("<f2"), np.zeros(halves.size % 2, "<f2")]).view("<u4")


def _delta_on_gpu(ex, weights: np.ndarray, start: np.ndarray) -> np.ndarray:
    n = weights.size
    out = empty(ex, ((n + 1) // 2,), np.uint32, fill=0xDEADBEEF)
    ex.dispatch("delta_f16", [upload(ex, weights), upload(ex, start), out], {"n": n})
    return download(ex, out, ((n + 1) // 2,), np.uint32).view("<u2")[:n]


def _numpy_delta(weights: np.ndarray, start: np.ndarray) -> np.ndarray:
    return np.clip(weights - start, -65504, 65504).astype("<f2").view("<u2")


def test_delta_of_every_tie_between_f16_neighbours_rounds_to_even(gpu):
    lo = FINITE_F16[FINITE_F16 < 0x7BFF]  # positive finite halves with a finite neighbour above
    lo = np.concatenate([lo, lo | 0x8000])  # and their negatives
    a = lo.view(np.float16).astype(np.float64)
    b = (lo + 1).astype(np.uint16).view(np.float16).astype(np.float64)
    ties = ((a + b) / 2).astype(np.float32)
    assert np.array_equal(ties.astype(np.float64), (a + b) / 2)  # exactly halfway, representable in f32
    start = np.zeros_like(ties)
    np.testing.assert_array_equal(_delta_on_gpu(gpu, ties, start), _numpy_delta(ties, start))


def test_delta_of_random_f32_bit_patterns_saturates_and_rounds_as_numpy(gpu):
    r = np.random.default_rng(7)
    bits = r.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[np.isfinite(x)]  # a NaN difference is rejected by the relay anyway (checked below)
    x = np.concatenate([x, np.float32([np.inf, -np.inf, 65504, 65519.99, 65520, -65520, 2**-25, 2**-24 * 1.5,
                                       2**-14, 2**-14 - 2**-25, 0.0, -0.0, 1e-45])])
    start = np.zeros_like(x)
    got = _delta_on_gpu(gpu, x, start)
    np.testing.assert_array_equal(got, _numpy_delta(x, start))
    assert got[-4:-1].tolist() == [0x0400, 0, 0x8000]  # 2^-14 - 2^-25 rounds up to the min normal


def test_delta_is_the_f32_difference_of_two_weight_vectors(gpu):
    r = np.random.default_rng(3)
    start = (r.standard_normal(10_001) * 0.05).astype(np.float32)
    weights = start + (r.standard_normal(10_001) * 1e-3).astype(np.float32)
    np.testing.assert_array_equal(_delta_on_gpu(gpu, weights, start), _numpy_delta(weights, start))


def test_delta_of_nan_is_a_nan_half(gpu):
    x = np.float32([np.nan, -np.nan, 1.0])
    got = _delta_on_gpu(gpu, x, np.zeros(3, np.float32))
    assert all((h & 0x7C00) == 0x7C00 and (h & 0x3FF) != 0 for h in got[:2]) and got[2] == 0x3C00


@pytest.mark.parametrize("seed", [0, 1])
def test_update_of_every_finite_f16_is_added_in_f32_exactly_as_numpy(gpu, seed):
    halves = FINITE_F16.copy().view(np.float16)
    np.random.default_rng(seed).shuffle(halves)
    n = halves.size - seed  # an odd count too: the last pair's high half is ignored
    halves = halves[:n]
    start = (np.random.default_rng(seed + 10).standard_normal(n) * 0.1).astype(np.float32)
    start[::5] = 0.0  # start + u == u: the decoded value itself, subnormal halves included
    update, bstart, weights = upload(gpu, _pairs(halves), np.uint32), upload(gpu, start), empty(gpu, (n,))
    gpu.dispatch("apply_update_f16", [update, bstart, weights], {"n": n})
    expect = np.add(start, halves.astype(np.float32), dtype=np.float32)
    np.testing.assert_array_equal(download(gpu, bstart, (n,)).view(np.uint32), expect.view(np.uint32))
    np.testing.assert_array_equal(download(gpu, weights, (n,)).view(np.uint32), expect.view(np.uint32))


def test_update_leaves_elements_past_n_untouched(gpu):
    start = np.arange(6, dtype=np.float32)
    bstart, weights = upload(gpu, start), empty(gpu, (6,))
    gpu.dispatch("apply_update_f16", [upload(gpu, _pairs(np.float16([1, 1, 1, 1, 1, 1])), np.uint32), bstart,
                                      weights], {"n": 3})
    got = download(gpu, bstart, (6,))
    np.testing.assert_array_equal(got, [1, 2, 3, 3, 4, 5])
    assert np.isnan(download(gpu, weights, (6,))[3:]).all()
