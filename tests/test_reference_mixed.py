"""reference/mixed.py: f16 rounding of the products' operands, the backward's exact power-of-two
gradient scale, and the swap of the reference model's products."""

import numpy as np

from pyscript_app.config import ModelConfig
from pyscript_app.gpu.coop_rules import gradient_scale
from pyscript_app.reference import model, ops
from pyscript_app.reference.mixed import matmul_backward_mixed, matmul_forward_mixed, mixed_products, to_f16


def test_to_f16_rounds_to_nearest_even_and_overflows_to_inf():
    one_ulp = 2.0 ** -10  # f16's step just above 1
    x = np.array([1 + one_ulp / 2, 1 + 1.5 * one_ulp, 65504.0, 65520.0, 2.0 ** -24 / 2], np.float32)
    got = to_f16(x)
    assert got[0] == 1.0 and got[1] == 1 + 2 * one_ulp  # ties go to the even neighbour
    assert got[2] == 65504.0 and np.isinf(got[3]) and got[4] == 0.0
    assert got.dtype == np.float32


def test_forward_rounds_both_operands_and_sums_in_f32():
    r = np.random.default_rng(0)
    x, w = r.standard_normal((8, 33)).astype(np.float32), r.standard_normal((33, 5)).astype(np.float32)
    want = x.astype(np.float16).astype(np.float64) @ w.astype(np.float16).astype(np.float64)
    got = matmul_forward_mixed(x, w)
    assert np.abs(got - want).max() < 1e-5 and np.abs(got - x @ w).max() > 1e-4


def test_the_gradient_scale_is_exact_in_range_and_keeps_small_gradients():
    r = np.random.default_rng(1)
    x, w = r.standard_normal((64, 16)).astype(np.float32), r.standard_normal((16, 12)).astype(np.float32)
    dy = r.standard_normal((64, 12)).astype(np.float32)
    assert all((a == b).all() for a, b in zip(matmul_backward_mixed(dy, x, w, 1024.0), matmul_backward_mixed(dy, x, w, 1.0)))
    tiny = dy * np.float32(2.0 ** -22)  # below f16's normal range (2^-14): subnormal or flushed unscaled
    exact = tiny.astype(np.float64) @ w.astype(np.float16).astype(np.float64).T
    err = lambda got: np.abs(got - exact).max() / np.abs(exact).max()  # noqa: E731
    assert err(matmul_backward_mixed(tiny, x, w, 1.0)[0]) > 1e-2
    assert err(matmul_backward_mixed(tiny, x, w, 2.0 ** 20)[0]) < 2e-3
    assert gradient_scale(2048) == 2048.0 and gradient_scale(2047) == 1024.0 and gradient_scale(1) == 1.0


def test_mixed_products_swaps_the_model_products_and_restores_them():
    cfg = ModelConfig(n_layer=1, n_embd=16, n_head=2, block_size=8, vocab_size=40)
    r = np.random.default_rng(2)
    flat = (r.standard_normal(cfg.param_count) * 0.3).astype(np.float32)
    idx, tgt = r.integers(0, 40, size=(2, 2, 8))
    saved = ops.matmul_forward, ops.matmul_backward
    loss32, g32 = model.loss_and_grad(cfg, flat, idx, tgt)
    with mixed_products(16.0):
        loss16, g16 = model.loss_and_grad(cfg, flat, idx, tgt)
    assert (ops.matmul_forward, ops.matmul_backward) == saved
    assert loss16 != loss32 and abs(loss16 - loss32) < 1e-2 * abs(loss32)
    assert np.abs(g16 - g32).max() < 2e-2 * np.abs(g32).max()
