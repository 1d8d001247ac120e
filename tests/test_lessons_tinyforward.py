"""pyscript_app/lessons/tinyforward.py: the plain-Python forward matches the numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pyscript_app.config import ModelConfig
from pyscript_app.lessons.tinyforward import TinyGPT, rmsnorm, softmax, vecmat
from pyscript_app.reference import model, ops
from pyscript_app.reference.init import init_params


def trained_looking_params(cfg: ModelConfig, seed: int) -> np.ndarray:
    """Init, then noise on every tensor: the zero-initialised projections must not hide bugs."""
    flat = init_params(cfg, seed).astype(np.float64)
    return flat + np.random.default_rng(seed).normal(0.0, 0.2, flat.shape)


@pytest.mark.parametrize("n_layer,n_head,T", [(1, 4, 7), (2, 2, 5)])
def test_logits_match_the_reference_model(n_layer, n_head, T):
    cfg = ModelConfig(n_layer=n_layer, n_embd=16, n_head=n_head, block_size=8, vocab_size=50)
    flat = trained_looking_params(cfg, seed=n_layer)
    ids = list(np.random.default_rng(3).integers(0, cfg.vocab_size, T))
    expected = model.logits(cfg, flat, np.array([ids]))[0]  # (T,V)
    got = TinyGPT(cfg, flat.tolist()).forward(ids, all_logits=True)
    np.testing.assert_allclose(np.array(got.logits), expected, rtol=1e-9, atol=1e-9)
    last = TinyGPT(cfg, flat.tolist()).forward(ids)
    assert len(last.logits) == 1
    np.testing.assert_allclose(last.logits[0], expected[-1], rtol=1e-9, atol=1e-9)


def test_attention_probabilities_match_the_reference_softmax():
    cfg = ModelConfig(n_layer=2, n_embd=16, n_head=4, block_size=8, vocab_size=40)
    flat = trained_looking_params(cfg, seed=7)
    ids = [1, 5, 9, 2, 33, 7]
    T, H, D, C = len(ids), cfg.n_head, cfg.head_dim, cfg.n_embd
    out = TinyGPT(cfg, flat.tolist()).forward(ids)
    # the reference: recompute the probabilities from the q, k the numpy model feeds attention_forward
    p = model.unflatten(cfg, flat)
    x = ops.embedding_forward(np.array([ids]), p["wte"], p["wpe"]).reshape(T, C)
    for l in range(cfg.n_layer):
        xn, _ = ops.rmsnorm_forward(x, p[f"h{l}.ln1"], cfg.rms_eps)
        qkv = (xn @ p[f"h{l}.qkv"]).reshape(T, 3, H, D)
        q, k = qkv[:, 0].transpose(1, 0, 2), qkv[:, 1].transpose(1, 0, 2)  # (H,T,D)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(D) + np.triu(np.full((T, T), -np.inf), 1)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)  # (H,T,T)
        np.testing.assert_allclose(np.array(out.attention[l]), probs, rtol=1e-9, atol=1e-12)
        att, _ = ops.attention_forward(qkv.reshape(1, T, 3 * C), H)
        x_mid = x + att.reshape(T, C) @ p[f"h{l}.proj"]
        xn2, _ = ops.rmsnorm_forward(x_mid, p[f"h{l}.ln2"], cfg.rms_eps)
        x = x_mid + np.maximum(xn2 @ p[f"h{l}.fc"], 0) @ p[f"h{l}.fc_proj"]
    att = np.array(out.attention)  # (L,H,T,T)
    np.testing.assert_allclose(att.sum(-1), 1.0, rtol=1e-12)
    assert np.all(att[..., np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0.0)  # causal


def test_building_blocks():
    assert vecmat([1.0, 2.0], [[1.0, 0.0, 3.0], [0.5, 1.0, -1.0]]) == [2.0, 2.0, 1.0]
    x = [3.0, -4.0]
    np.testing.assert_allclose(rmsnorm(x, [1.0, 2.0], 0.0), [3 / math.sqrt(12.5), -8 / math.sqrt(12.5)])
    p = softmax([1000.0, 1000.0 + math.log(3.0)])  # no overflow
    np.testing.assert_allclose(p, [0.25, 0.75])


def test_rejects_what_it_cannot_run():
    cfg = ModelConfig(n_layer=1, n_embd=8, n_head=2, block_size=4, vocab_size=10)
    flat = [0.0] * cfg.param_count
    with pytest.raises(ValueError, match="parameters"):
        TinyGPT(cfg, flat[:-1])
    tiny = TinyGPT(cfg, flat)
    with pytest.raises(ValueError, match="1 to 4 tokens"):
        tiny.forward([1] * 5)
    with pytest.raises(ValueError, match="token ids"):
        tiny.forward([10])
