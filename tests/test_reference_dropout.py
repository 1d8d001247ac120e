"""reference/dropout.py: the counter-based mask (against pure Python rng), the op's finite-difference
gradient with the mask fixed, and dropout inside the whole reference model (reference/model.py)."""

import math

import numpy as np
import pytest

from pyscript_app import rng
from pyscript_app.config import ModelConfig
from pyscript_app.reference import model
from pyscript_app.reference.dropout import Dropout, dropout_backward, dropout_forward, dropout_mask
from pyscript_app.reference.gradcheck import numeric_grad, relative_error

SMALL = ModelConfig(n_layer=2, n_embd=8, n_head=2, block_size=6, vocab_size=11)


@pytest.mark.parametrize("n,p", [(1, 0.5), (257, 0.1), (1000 + 3, 0.9)])
def test_mask_equals_pure_python_bit_for_bit(n, p):
    key, thr = rng.dropout_key(7, 3, 2), rng.dropout_threshold(p)
    expected = [rng.dropout_keep(key, i, thr) for i in range(n)]
    assert dropout_mask(key, n, thr).tolist() == expected


def test_mask_keeps_one_minus_p_and_differs_per_site_step_and_seed():
    n, p = 200_000, 0.2
    masks = {
        "base": Dropout(p, 1, 5).mask(3, n),
        "site": Dropout(p, 1, 5).mask(4, n),
        "step": Dropout(p, 1, 6).mask(3, n),
        "seed": Dropout(p, 2, 5).mask(3, n),
    }
    sigma = math.sqrt(p * (1 - p) / n)
    for name, m in masks.items():
        assert abs(m.mean() - (1 - p)) < 5 * sigma, name
    for name in ("site", "step", "seed"):
        agree = (masks[name] == masks["base"]).mean()  # independent masks agree on p^2 + (1-p)^2
        assert abs(agree - (p * p + (1 - p) ** 2)) < 0.01, name
    assert np.array_equal(Dropout(p, 1, 5).mask(3, n), masks["base"]), "a mask is a pure function"


def test_forward_scales_kept_elements_and_zeroes_the_rest():
    x = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32)
    keep = dropout_mask(rng.dropout_key(1, 1, 0), x.size, rng.dropout_threshold(0.3))
    scale = rng.dropout_scale(0.3)
    y = dropout_forward(x, keep, scale)
    assert y.dtype == np.float32 and y.shape == x.shape
    k = keep.reshape(x.shape)
    assert np.array_equal(y[k], x[k] * np.float32(scale)) and np.all(y[~k] == 0)
    assert 0 < k.sum() < k.size


def test_backward_matches_finite_differences_with_the_mask_fixed():
    r = np.random.default_rng(1)
    x, upstream = r.standard_normal((4, 6)), r.standard_normal((4, 6))
    keep, scale = dropout_mask(rng.dropout_key(3, 9, 1), x.size, rng.dropout_threshold(0.4)), rng.dropout_scale(0.4)

    def loss():
        return float(np.sum(upstream * dropout_forward(x, keep, scale)))

    assert relative_error(dropout_backward(upstream, keep, scale), numeric_grad(loss, x)) < 1e-9


def random_params(cfg, seed):
    r = np.random.default_rng(seed)
    return r.standard_normal(cfg.param_count) * 0.4  # float64, every branch active


def random_batch(cfg, seed, B, T):
    tokens = np.random.default_rng(seed).integers(0, cfg.vocab_size, size=(B, T + 1))
    return tokens[:, :-1], tokens[:, 1:]


def test_model_with_dropout_matches_finite_differences():
    flat = random_params(SMALL, 0)
    idx, targets = random_batch(SMALL, 1, B=2, T=6)
    drop = Dropout(0.3, seed=5, step=2)  # the masks are a function of (seed, step): fixed here
    loss, grad = model.loss_and_grad(SMALL, flat, idx, targets, drop)
    numeric = numeric_grad(lambda: model.forward(SMALL, flat, idx, targets, drop)[0], flat)
    for name, (off, shape) in SMALL.param_offsets().items():
        n = math.prod(shape)
        a, b = grad[off : off + n], numeric[off : off + n]
        assert np.abs(a).max() > 1e-6, f"{name} gets no gradient"
        assert relative_error(a, b) < 1e-6, name
    assert loss != model.forward(SMALL, flat, idx, targets)[0], "dropout changes the training loss"


def test_model_drops_at_every_site_and_zero_rate_is_no_dropout():
    flat = random_params(SMALL, 2).astype(np.float32)
    idx, targets = random_batch(SMALL, 3, B=3, T=5)
    loss0, cache0 = model.forward(SMALL, flat, idx, targets)
    loss_zero, cache_zero = model.forward(SMALL, flat, idx, targets, Dropout(0.0, 1, 1))
    assert loss_zero == loss0 and np.array_equal(cache_zero.logits, cache0.logits)
    _, cache = model.forward(SMALL, flat, idx, targets, Dropout(0.5, 1, 1))
    assert sorted(cache.keep) == list(range(rng.dropout_site_count(SMALL.n_layer)))
    assert all(m.size == 3 * 5 * SMALL.n_embd for m in cache.keep.values())
    # the embedding site: the first layer's input is the dropped embedding sum
    p = model.unflatten(SMALL, flat)
    emb = (p["wte"][idx] + p["wpe"][:5]).reshape(15, SMALL.n_embd)
    expected = dropout_forward(emb, cache.keep[rng.DROPOUT_SITE_EMBEDDING], rng.dropout_scale(0.5))
    assert np.array_equal(cache.layers[0].x_in, expected)
