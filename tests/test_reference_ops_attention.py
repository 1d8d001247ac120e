"""Causal multi-head attention: gradient check, head layout, causality."""

import numpy as np

from pyscript_app.reference.gradcheck import numeric_grad, relative_error
from pyscript_app.reference.ops_attention import attention_backward, attention_forward

B, T, H, D = 2, 5, 2, 3
C = H * D


def naive_attention(qkv, H):
    """Loop over batch and heads; head h uses columns h*D:(h+1)*D of each of q, k, v."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    D = C // H
    y, lse = np.zeros((B, T, C)), np.zeros((B, H, T))
    for b in range(B):
        for h in range(H):
            cols = slice(h * D, (h + 1) * D)
            q, k, v = qkv[b, :, cols], qkv[b, :, C:][:, cols], qkv[b, :, 2 * C :][:, cols]
            for t in range(T):
                s = q[t] @ k[: t + 1].T / np.sqrt(D)  # keys 0..t only
                lse[b, h, t] = np.log(np.sum(np.exp(s)))
                y[b, t, cols] = np.exp(s - lse[b, h, t]) @ v[: t + 1]
    return y, lse


def test_forward_matches_per_head_loops():
    qkv = np.random.default_rng(0).standard_normal((B, T, 3 * C))
    y, lse = attention_forward(qkv, H)
    y_ref, lse_ref = naive_attention(qkv, H)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-12, atol=1e-12)


def test_backward_matches_finite_differences():
    rng = np.random.default_rng(1)
    qkv = rng.standard_normal((B, T, 3 * C))
    upstream = rng.standard_normal((B, T, C))

    def loss():
        return float(np.sum(upstream * attention_forward(qkv, H)[0]))

    y, lse = attention_forward(qkv, H)
    dqkv = attention_backward(upstream, qkv, y, lse, H)
    assert dqkv.shape == qkv.shape
    assert relative_error(dqkv, numeric_grad(loss, qkv)) < 1e-6


def test_output_at_t_ignores_the_future():
    rng = np.random.default_rng(2)
    qkv = rng.standard_normal((B, T, 3 * C))
    y, _ = attention_forward(qkv, H)
    for t in range(T - 1):
        changed = qkv.copy()
        changed[:, t + 1 :] = rng.standard_normal((B, T - t - 1, 3 * C))
        y_changed, _ = attention_forward(changed, H)
        assert np.array_equal(y_changed[:, : t + 1], y[:, : t + 1])
        assert not np.allclose(y_changed[:, t + 1 :], y[:, t + 1 :])


def test_float32_stays_float32():
    qkv = np.random.default_rng(3).standard_normal((B, T, 3 * C)).astype(np.float32)
    y, lse = attention_forward(qkv, H)
    dqkv = attention_backward(y, qkv, y, lse, H)
    assert (y.dtype, lse.dtype, dqkv.dtype) == (np.float32,) * 3
