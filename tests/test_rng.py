import numpy as np
import pytest

from pyscript_app import rng
from pyscript_app.reference.init import init_tensor


@pytest.mark.parametrize("seed,tensor,n,std", [(0, 0, 100, 0.02), (1337, 5, 257, 1.0), (2**32 - 1, 17, 64, 0.3)])
def test_pure_python_init_equals_numpy_bit_for_bit(seed, tensor, n, std):
    a = np.array(rng.init_values(seed, tensor, n, std), dtype=np.float32)
    b = init_tensor(seed, tensor, n, std)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_init_moments_and_bounds():
    std = 0.5
    w = init_tensor(3, 1, 200_000, std)
    assert abs(w.mean()) < 0.01
    assert abs(w.std() / std - 1) < 0.01
    assert np.abs(w).max() < 2 * std * 3**0.5  # Irwin-Hall(4) is bounded: |z| < 2


def test_streams_differ_by_seed_and_tensor():
    a = init_tensor(1, 0, 64, 1.0)
    assert not np.array_equal(a, init_tensor(2, 0, 64, 1.0))
    assert not np.array_equal(a, init_tensor(1, 1, 64, 1.0))


def test_batch_starts_are_in_range_and_every_start_is_reachable():
    n_tokens, block = 40, 8
    seen = set()
    for step in range(400):
        starts = rng.batch_starts(5, step, 4, n_tokens, block)
        assert all(0 <= s <= n_tokens - block - 1 for s in starts)
        seen.update(starts)
    assert seen == set(range(n_tokens - block))


def test_batch_starts_deterministic_and_seed_dependent():
    assert rng.batch_starts(1, 3, 8, 10_000, 32) == rng.batch_starts(1, 3, 8, 10_000, 32)
    assert rng.batch_starts(1, 3, 8, 10_000, 32) != rng.batch_starts(2, 3, 8, 10_000, 32)
    with pytest.raises(ValueError):
        rng.batch_starts(1, 0, 1, 8, 8)
