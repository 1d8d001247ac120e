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


def test_dropout_threshold_and_scale():
    assert rng.dropout_threshold(0.0) == 0  # every hash is >= 0: nothing dropped
    assert rng.dropout_threshold(0.25) == 1 << 30
    assert rng.dropout_threshold(1 - 2.0**-40) == rng.MASK32  # clamped to a u32
    assert rng.dropout_scale(0.0) == 1.0 and rng.dropout_scale(0.5) == 2.0
    assert rng.dropout_scale(0.1) == rng.f32(1 / 0.9) != 1 / 0.9  # rounded once to f32
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError):
            rng.dropout_threshold(bad)


def test_dropout_keys_are_distinct_per_site_step_and_seed():
    keys = rng.dropout_keys(seed=1, step=1, n_layer=3)
    assert len(keys) == rng.dropout_site_count(3) == 7
    assert keys == [rng.dropout_key(1, 1, s) for s in range(7)]
    others = rng.dropout_keys(1, 2, 3) + rng.dropout_keys(2, 1, 3)
    assert len(set(keys + others)) == 21
    # sites: the embedding, then attention and MLP of each layer
    assert [rng.DROPOUT_SITE_EMBEDDING, rng.dropout_site(0, "attn"), rng.dropout_site(0, "mlp"),
            rng.dropout_site(2, "mlp")] == [0, 1, 2, 6]
