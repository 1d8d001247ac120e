"""Incremental decoding with the KV cache equals the full forward pass."""

import numpy as np
import pytest

from pyscript_app.config import ModelConfig
from pyscript_app.reference import model
from pyscript_app.reference.kvcache import KVCache, decode_step, prefill

CFG = ModelConfig(n_layer=2, n_embd=16, n_head=4, block_size=8, vocab_size=13)


def random_params(seed):
    """float32 normal weights, proj and fc_proj non-zero so attention affects the logits."""
    rng = np.random.default_rng(seed)
    flat = np.empty(CFG.param_count, dtype=np.float32)
    for name, view in model.unflatten(CFG, flat).items():
        if name.split(".")[-1].startswith("ln"):  # gains near 1
            view[...] = 1.0 + 0.2 * rng.standard_normal(view.shape)
        else:
            view[...] = rng.standard_normal(view.shape) * view.shape[0] ** -0.5
    return flat


def test_each_decode_step_equals_the_last_row_of_the_full_forward():
    flat = random_params(0)
    idx = np.random.default_rng(1).integers(0, CFG.vocab_size, size=(3, CFG.block_size))
    cache = KVCache(CFG, batch=3)
    for pos in range(CFG.block_size):
        step_logits = decode_step(CFG, flat, cache, idx[:, pos], pos)  # (B,V)
        full = model.logits(CFG, flat, idx[:, : pos + 1])[:, -1]  # (B,V)
        assert step_logits.shape == (3, CFG.vocab_size) and step_logits.dtype == np.float32
        np.testing.assert_allclose(step_logits, full, rtol=1e-5, atol=1e-5)
    assert cache.length == CFG.block_size


def test_prefill_then_rewrite_an_earlier_position():
    flat = random_params(2)
    idx = np.random.default_rng(3).integers(0, CFG.vocab_size, size=(1, 6))
    cache = KVCache(CFG)
    np.testing.assert_allclose(prefill(CFG, flat, cache, idx), model.logits(CFG, flat, idx)[:, -1],
                               rtol=1e-5, atol=1e-5)
    other = (idx[:, 3] + 1) % CFG.vocab_size
    logits = decode_step(CFG, flat, cache, other, 3)  # overwrite position 3: length becomes 4
    edited = np.concatenate([idx[:, :3], other[:, None]], axis=1)
    np.testing.assert_allclose(logits, model.logits(CFG, flat, edited)[:, -1], rtol=1e-5, atol=1e-5)
    assert cache.length == 4


def test_positions_outside_the_cache_are_refused():
    flat, cache = random_params(4), KVCache(CFG)
    with pytest.raises(ValueError):
        decode_step(CFG, flat, cache, np.array([1]), 1)  # skips position 0
    with pytest.raises(ValueError):
        decode_step(CFG, flat, cache, np.array([1]), CFG.block_size)
    with pytest.raises(ValueError):
        decode_step(CFG, flat, cache, np.array([1, 2]), 0)  # batch mismatch
