"""The reference GPT: whole-model gradient check, initial loss, overfitting, determinism."""

import math

import numpy as np
import pytest

from pyscript_app.config import ModelConfig, preset
from pyscript_app.reference import model
from pyscript_app.reference.adamw import AdamW
from pyscript_app.reference.gradcheck import numeric_grad, relative_error
from pyscript_app.reference.init import init_params

SMALL = ModelConfig(n_layer=2, n_embd=8, n_head=2, block_size=6, vocab_size=11)


def random_params(cfg, seed, dtype=np.float64):
    """Seeded normal weights everywhere (proj and fc_proj non-zero, so every path carries gradient)."""
    rng = np.random.default_rng(seed)
    flat = np.empty(cfg.param_count, dtype=dtype)
    for name, view in model.unflatten(cfg, flat).items():
        if name.split(".")[-1].startswith("ln"):
            view[...] = 1.0 + 0.3 * rng.standard_normal(view.shape)
        else:
            view[...] = rng.standard_normal(view.shape) * view.shape[0] ** -0.5
    return flat


def random_batch(cfg, seed, B, T):
    tokens = np.random.default_rng(seed).integers(0, cfg.vocab_size, size=(B, T + 1))
    return tokens[:, :-1], tokens[:, 1:]  # idx, targets (B,T)


def test_unflatten_gives_views_in_layout_order():
    flat = np.zeros(SMALL.param_count, dtype=np.float32)
    params = model.unflatten(SMALL, flat)
    assert [(n, v.shape) for n, v in params.items()] == SMALL.param_shapes()
    params["h1.fc"][2, 3] = 7.0
    off, shape = SMALL.param_offsets()["h1.fc"]
    assert flat[off + 2 * shape[1] + 3] == 7.0


def test_loss_and_grad_matches_finite_differences():
    flat = random_params(SMALL, seed=0)
    idx, targets = random_batch(SMALL, seed=1, B=2, T=6)
    loss, grad = model.loss_and_grad(SMALL, flat, idx, targets)
    assert grad.dtype == np.float64 and grad.shape == flat.shape
    numeric = numeric_grad(lambda: model.forward(SMALL, flat, idx, targets)[0], flat)
    # every tensor is checked on its own scale, and every tensor must receive gradient
    for name, (off, shape) in SMALL.param_offsets().items():
        n = math.prod(shape)
        a, b = grad[off : off + n], numeric[off : off + n]
        assert np.abs(a).max() > 1e-6, f"{name} gets no gradient"
        assert relative_error(a, b) < 1e-6, name


def test_short_sequence_uses_the_first_positions_only():
    flat = random_params(SMALL, seed=2)
    idx, targets = random_batch(SMALL, seed=3, B=2, T=6)
    full = model.logits(SMALL, flat, idx)
    np.testing.assert_allclose(model.logits(SMALL, flat, idx[:, :4]), full[:, :4], rtol=1e-12)
    _, grad = model.loss_and_grad(SMALL, flat, idx[:, :4], targets[:, :4])
    off, (Tmax, C) = SMALL.param_offsets()["wpe"]
    assert np.all(grad[off + 4 * C : off + Tmax * C] == 0)  # wpe rows 4, 5 unused


def test_forward_without_targets_returns_logits():
    flat = random_params(SMALL, seed=4, dtype=np.float32)
    idx, targets = random_batch(SMALL, seed=5, B=3, T=5)
    none, logits = model.forward(SMALL, flat, idx)
    loss, cache = model.forward(SMALL, flat, idx, targets)
    assert none is None and logits.shape == (3, 5, SMALL.vocab_size) and logits.dtype == np.float32
    np.testing.assert_array_equal(cache.logits, logits)
    assert isinstance(loss, float)


def test_sequence_longer_than_the_context_is_refused():
    with pytest.raises(ValueError):
        model.logits(SMALL, random_params(SMALL, 0), np.zeros((1, 7), dtype=np.int64))


@pytest.mark.parametrize("name", ["nano", "tiny"])
def test_initial_loss_is_near_uniform(name):
    cfg = preset(name)
    idx, targets = random_batch(cfg, seed=6, B=4, T=cfg.block_size)
    loss, _ = model.forward(cfg, init_params(cfg, seed=1337), idx, targets)
    assert abs(loss - math.log(cfg.vocab_size)) < 0.1


def test_overfits_one_batch():
    cfg = ModelConfig(n_layer=1, n_embd=32, n_head=4, block_size=8, vocab_size=16)
    flat, opt = init_params(cfg, seed=3), AdamW(cfg)
    idx, targets = random_batch(cfg, seed=7, B=4, T=8)
    first = None
    for _ in range(300):
        loss, grad = model.loss_and_grad(cfg, flat, idx, targets)
        first = loss if first is None else first
        if loss < 0.05:
            break
        opt.step(flat, grad, 1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.0, max_norm=1.0)
    assert first > 2.0 and loss < 0.05


def test_training_is_deterministic():
    cfg = preset("nano")

    def run():
        flat, opt, losses = init_params(cfg, seed=11), AdamW(cfg), []
        for step in range(5):
            idx, targets = random_batch(cfg, seed=step, B=2, T=cfg.block_size)
            loss, grad = model.loss_and_grad(cfg, flat, idx, targets)
            opt.step(flat, grad, 3e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, max_norm=1.0)
            losses.append(np.float32(loss).tobytes())
        return losses, flat

    (losses_a, flat_a), (losses_b, flat_b) = run(), run()
    assert losses_a == losses_b
    assert flat_a.tobytes() == flat_b.tobytes()
    assert len(set(losses_a)) > 1  # training moved
