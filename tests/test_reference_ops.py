"""Gradient checks (float64 central differences) and properties of the reference ops."""

import math

import numpy as np
import pytest

from pyscript_app.reference import ops
from pyscript_app.reference.gradcheck import numeric_grad, relative_error

TOL = 1e-6  # relative error allowed between analytic and finite-difference gradients


def test_embedding_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    V, Tmax, C, B, T = 5, 6, 3, 2, 4  # T < Tmax: rows of wpe past T must get zero gradient
    idx = np.array([[1, 3, 1, 0], [3, 3, 4, 1]])  # repeated tokens exercise the scatter-add
    wte, wpe = rng.standard_normal((V, C)), rng.standard_normal((Tmax, C))
    upstream = rng.standard_normal((B, T, C))  # (B,T,C) dL/dx for L = sum(upstream * x)

    def loss():
        return float(np.sum(upstream * ops.embedding_forward(idx, wte, wpe)))

    dwte, dwpe = ops.embedding_backward(idx, upstream, V, Tmax)
    assert relative_error(dwte, numeric_grad(loss, wte)) < TOL
    assert relative_error(dwpe, numeric_grad(loss, wpe)) < TOL
    assert np.all(dwpe[T:] == 0) and np.all(dwte[2] == 0)  # token 2 never appears


def test_rmsnorm_forward_normalises_rows():
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((4, 7)) * 3.0, rng.standard_normal(7)
    y, rstd = ops.rmsnorm_forward(x, g, 1e-5)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(np.mean(x**2, axis=1) + 1e-5), rtol=1e-12)
    np.testing.assert_allclose(np.sqrt(np.mean((y / g) ** 2, axis=1)), 1.0, rtol=1e-5)


def test_rmsnorm_backward_matches_finite_differences():
    rng = np.random.default_rng(2)
    N, C, eps = 4, 5, 1e-5
    x, g = rng.standard_normal((N, C)), rng.standard_normal(C)
    upstream = rng.standard_normal((N, C))

    def loss():
        return float(np.sum(upstream * ops.rmsnorm_forward(x, g, eps)[0]))

    _, rstd = ops.rmsnorm_forward(x, g, eps)
    dx, dg = ops.rmsnorm_backward(upstream, x, g, rstd)
    assert relative_error(dx, numeric_grad(loss, x)) < TOL
    assert relative_error(dg, numeric_grad(loss, g)) < TOL


def test_matmul_backward_matches_finite_differences():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    upstream = rng.standard_normal((3, 5))

    def loss():
        return float(np.sum(upstream * ops.matmul_forward(x, w)))

    dx, dw = ops.matmul_backward(upstream, x, w)
    assert relative_error(dx, numeric_grad(loss, x)) < TOL
    assert relative_error(dw, numeric_grad(loss, w)) < TOL


def test_relu_backward_matches_finite_differences_away_from_the_kink():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 6))
    x[np.abs(x) < 0.1] = 0.5  # central differences are only valid away from 0
    upstream = rng.standard_normal((3, 6))

    def loss():
        return float(np.sum(upstream * ops.relu_forward(x)))

    assert relative_error(ops.relu_backward(upstream, x), numeric_grad(loss, x)) < TOL


def test_relu_derivative_at_zero_is_zero():
    x = np.array([-1.0, 0.0, 2.0])
    assert ops.relu_backward(np.ones(3), x).tolist() == [0.0, 0.0, 1.0]
    assert ops.relu_forward(x).tolist() == [0.0, 0.0, 2.0]


def test_crossentropy_gradient_is_that_of_the_mean_loss():
    rng = np.random.default_rng(5)
    N, V = 4, 7
    logits, targets = rng.standard_normal((N, V)) * 2.0, rng.integers(0, V, N)

    def loss():
        return float(ops.crossentropy_forward_backward(logits, targets)[0].mean())

    losses, dlogits = ops.crossentropy_forward_backward(logits, targets)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(losses, -log_softmax[np.arange(N), targets], rtol=1e-12)
    assert relative_error(dlogits, numeric_grad(loss, logits)) < TOL


def test_crossentropy_is_stable_for_large_logits():
    rng = np.random.default_rng(6)
    logits, targets = rng.standard_normal((3, 5)).astype(np.float32), np.array([0, 4, 2])
    small, dsmall = ops.crossentropy_forward_backward(logits, targets)
    big, dbig = ops.crossentropy_forward_backward(logits + 1000.0, targets)
    assert np.all(np.isfinite(big))
    np.testing.assert_allclose(big, small, atol=1e-3)  # f32 spacing at 1000 is 6e-5
    np.testing.assert_allclose(dbig, dsmall, atol=1e-4)


def test_grad_global_norm_and_clip_coefficient():
    g = np.array([3.0, 0.0, -4.0], dtype=np.float32)
    assert ops.grad_global_norm(g) == pytest.approx(5.0)
    assert ops.clip_coefficient(5.0, 1.0) == pytest.approx(1.0 / (5.0 + 1e-6))
    assert ops.clip_coefficient(0.5, 1.0) == 1.0  # never scales a gradient up


def test_every_op_keeps_float32():
    rng = np.random.default_rng(7)
    f32 = np.float32
    x, g, w = (rng.standard_normal(s).astype(f32) for s in [(4, 6), (6,), (6, 3)])
    y, rstd = ops.rmsnorm_forward(x, g, 1e-5)
    outs = [y, rstd, *ops.rmsnorm_backward(x, x, g, rstd)]
    outs += [ops.matmul_forward(x, w), *ops.matmul_backward(x @ w, x, w)]
    outs += [ops.relu_forward(x), ops.relu_backward(x, x)]
    outs += list(ops.crossentropy_forward_backward(x, np.array([0, 1, 2, 5])))
    idx = np.array([[0, 1], [2, 1]])
    wte, wpe = rng.standard_normal((3, 6)).astype(f32), rng.standard_normal((4, 6)).astype(f32)
    emb = ops.embedding_forward(idx, wte, wpe)
    outs += [emb, *ops.embedding_backward(idx, emb, 3, 4)]
    assert [o.dtype for o in outs] == [np.dtype(f32)] * len(outs)
    assert isinstance(ops.grad_global_norm(x.ravel()), float)
    assert math.isfinite(ops.grad_global_norm(x.ravel()))
