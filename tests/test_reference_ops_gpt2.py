"""GPT-2's reference ops: gradient checks (float64 central differences) and properties."""

import math

import numpy as np

from pyscript_app.reference import ops_gpt2 as g2
from pyscript_app.reference.gradcheck import numeric_grad, relative_error

TOL = 1e-6  # relative error allowed between analytic and finite-difference gradients


def test_layernorm_forward_normalises_rows_then_scales_and_shifts():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 7)) * 3.0 + 5.0  # a large mean: the centred variance must cope
    w, b = rng.standard_normal(7), rng.standard_normal(7)
    y, mean, rstd = g2.layernorm_forward(x, w, b, 1e-5)
    np.testing.assert_allclose(mean, x.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(x.var(axis=1) + 1e-5), rtol=1e-12)
    xhat = (y - b) / w  # (N,C) the normalised rows
    np.testing.assert_allclose(xhat.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(xhat.std(axis=1), 1.0, rtol=1e-5)


def test_layernorm_forward_keeps_float32_and_centres_before_squaring():
    x = (np.float32(1000.0) + np.arange(8, dtype=np.float32) * np.float32(0.01))[None, :]  # (1,8)
    w, b = np.ones(8, np.float32), np.zeros(8, np.float32)
    y, _, _ = g2.layernorm_forward(x, w, b, 1e-5)
    x64, w64, b64 = (t.astype(np.float64) for t in (x, w, b))
    ref, _, _ = g2.layernorm_forward(x64, w64, b64, 1e-5)
    assert y.dtype == np.float32
    # mean(x^2) - mean^2 would lose every digit here (1e6 - 1e6 in float32); two passes keep ~1e-3
    assert relative_error(y, ref) < 5e-3  # (naive: a negative variance, NaN)


def test_layernorm_backward_matches_finite_differences():
    rng = np.random.default_rng(1)
    N, C, eps = 4, 6, 1e-5
    x = rng.standard_normal((N, C)) + 0.5
    w, b = rng.standard_normal(C), rng.standard_normal(C)
    upstream = rng.standard_normal((N, C))  # dL/dy for L = sum(upstream * y)

    def loss():
        return float(np.sum(upstream * g2.layernorm_forward(x, w, b, eps)[0]))

    _, mean, rstd = g2.layernorm_forward(x, w, b, eps)
    dx, dw, db = g2.layernorm_backward(upstream, x, w, mean, rstd)
    assert relative_error(dx, numeric_grad(loss, x)) < TOL
    assert relative_error(dw, numeric_grad(loss, w)) < TOL
    assert relative_error(db, numeric_grad(loss, b)) < TOL


def test_gelu_is_the_tanh_approximation_and_close_to_the_exact_gelu():
    x = np.linspace(-6.0, 6.0, 241)
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    y = g2.gelu_forward(x)
    expected = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(y, expected, rtol=1e-14, atol=1e-15)
    diff = np.abs(y - exact).max()
    assert 1e-4 < diff < 5e-4  # an approximation: close to erf's GELU, yet not it
    assert g2.gelu_forward(np.ones(3, np.float32)).dtype == np.float32


def test_gelu_backward_matches_finite_differences():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 7)) * 2.0
    upstream = rng.standard_normal((3, 7))

    def loss():
        return float(np.sum(upstream * g2.gelu_forward(x)))

    assert relative_error(g2.gelu_backward(upstream, x), numeric_grad(loss, x)) < TOL


def test_linear_with_bias_forward_and_backward():
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    upstream = rng.standard_normal((5, 3))
    np.testing.assert_allclose(g2.linear_forward(x, w, b), x @ w + b, rtol=1e-14)

    def loss():
        return float(np.sum(upstream * g2.linear_forward(x, w, b)))

    dx, dw, db = g2.linear_backward(upstream, x, w)
    assert relative_error(dx, numeric_grad(loss, x)) < TOL
    assert relative_error(dw, numeric_grad(loss, w)) < TOL
    assert relative_error(db, numeric_grad(loss, b)) < TOL


def test_tied_head_scores_the_real_vocabulary_only():
    rng = np.random.default_rng(4)
    V, Vp, C = 5, 8, 3  # rows 5..7 of wte are padding
    x, wte = rng.standard_normal((2, C)), rng.standard_normal((Vp, C))
    logits = g2.tied_head_forward(x, wte, V)
    assert logits.shape == (2, V)
    np.testing.assert_allclose(logits, x @ wte[:V].T, rtol=1e-14)
    wte[V:] = 1e6  # garbage in the padding changes nothing
    assert np.array_equal(g2.tied_head_forward(x, wte, V), logits)


def test_tied_head_backward_matches_finite_differences_and_leaves_padding_at_zero():
    rng = np.random.default_rng(5)
    V, Vp, C, N = 5, 8, 3, 4
    x, wte = rng.standard_normal((N, C)), rng.standard_normal((Vp, C))
    upstream = rng.standard_normal((N, V))

    def loss():
        return float(np.sum(upstream * g2.tied_head_forward(x, wte, V)))

    dx, dwte = g2.tied_head_backward(upstream, x, wte)
    assert dwte.shape == (Vp, C) and np.all(dwte[V:] == 0)
    assert relative_error(dx, numeric_grad(loss, x)) < TOL
    assert relative_error(dwte, numeric_grad(loss, wte)) < TOL
