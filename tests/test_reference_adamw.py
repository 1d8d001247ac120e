"""AdamW against a hand-written scalar loop; decay mask; state round trip."""

import math

import numpy as np
import pytest

from pyscript_app.config import ModelConfig
from pyscript_app.reference.adamw import AdamW, decay_mask

CFG = ModelConfig(n_layer=1, n_embd=4, n_head=1, block_size=2, vocab_size=3)
HYPER = dict(beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)


def scalar_adamw(p, grads, lr, beta1, beta2, eps, weight_decay, max_norm, decay):
    """One element at a time, in float64, straight from the formula in adamw.py's docstring."""
    p, m, v = list(p), [0.0] * len(p), [0.0] * len(p)
    for t, g in enumerate(grads, start=1):
        norm = math.sqrt(sum(x * x for x in g))
        clip = min(1.0, max_norm / (norm + 1e-6))
        for i in range(len(p)):
            gi = g[i] * clip
            m[i] = beta1 * m[i] + (1 - beta1) * gi
            v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
            mhat, vhat = m[i] / (1 - beta1**t), v[i] / (1 - beta2**t)
            p[i] -= lr * (mhat / (math.sqrt(vhat) + eps) + weight_decay * decay[i] * p[i])
    return np.array(p)


def test_decay_mask_covers_2d_tensors_only():
    mask = decay_mask(CFG)
    for name, (off, shape) in CFG.param_offsets().items():
        expected = 1.0 if len(shape) == 2 else 0.0  # wte, wpe, matrices: decayed; gains: not
        assert np.all(mask[off : off + math.prod(shape)] == expected), name


def test_matches_scalar_loop_with_clipping_and_decay():
    rng = np.random.default_rng(0)
    P = CFG.param_count
    p0 = rng.standard_normal(P).astype(np.float32)
    # steps 1 and 3 are clipped (norm ~ 15 > 2), step 2 is not
    grads = [(rng.standard_normal(P) * s).astype(np.float32) for s in (1.0, 0.05, 1.0)]
    flat, opt = p0.copy(), AdamW(CFG)
    infos = [opt.step(flat, g, 1e-2, max_norm=2.0, **HYPER) for g in grads]
    expected = scalar_adamw(p0.astype(float), [g.astype(float) for g in grads], 1e-2,
                            max_norm=2.0, decay=decay_mask(CFG).astype(float), **HYPER)
    np.testing.assert_allclose(flat, expected, rtol=1e-5, atol=1e-6)
    assert infos[0]["clip"] < 1.0 and infos[1]["clip"] == 1.0
    assert infos[0]["grad_norm"] == pytest.approx(np.linalg.norm(grads[0].astype(float)), rel=1e-5)
    assert opt.t == 3


def test_gradient_is_not_modified_and_no_clip_when_max_norm_is_none():
    rng = np.random.default_rng(1)
    flat = rng.standard_normal(CFG.param_count).astype(np.float32)
    grad = (rng.standard_normal(CFG.param_count) * 10).astype(np.float32)
    saved = grad.copy()
    info = AdamW(CFG).step(flat, grad, 1e-3, max_norm=None, **HYPER)
    assert info["clip"] == 1.0 and np.array_equal(grad, saved)


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(2)
    P = CFG.param_count
    grads = [rng.standard_normal(P).astype(np.float32) for _ in range(4)]
    flat_a, opt_a = rng.standard_normal(P).astype(np.float32), AdamW(CFG)
    for g in grads[:2]:
        opt_a.step(flat_a, g, 1e-2, max_norm=1.0, **HYPER)
    state = opt_a.state_dict()
    assert sorted(state) == ["m", "t", "v"] and isinstance(state["t"], int)
    flat_b, opt_b = flat_a.copy(), AdamW(CFG)
    opt_b.load_state_dict(state)
    for g in grads[2:]:
        opt_a.step(flat_a, g, 1e-2, max_norm=1.0, **HYPER)
        opt_b.step(flat_b, g, 1e-2, max_norm=1.0, **HYPER)
    assert flat_a.tobytes() == flat_b.tobytes()
