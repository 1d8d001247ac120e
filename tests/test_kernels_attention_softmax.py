"""shaders/attention_softmax.wgsl against the softmax steps of reference/mixed.py's attention pair.

Scores above the diagonal are NaN (what a skipped block of the scores product leaves may be anything):
no output may see them. Tolerances: exp and log differ between the GPU and numpy by a few ulp, and
the sums' order differs (tree against numpy's pairwise): 1e-6 absolute + 1e-5 relative."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401

pytestmark = pytest.mark.gpu


def _scores(rows_bh: int, T: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(B*H, T, T) scores with NaN above the diagonal, and the causal mask."""
    r = np.random.default_rng(seed)
    s = (3 * r.standard_normal((rows_bh, T, T))).astype(np.float32)
    keep = np.tril(np.ones((T, T), bool))
    return np.where(keep, s, np.float32(np.nan)), keep


@pytest.mark.parametrize("BH,T", [(1, 4), (3, 12), (2, 136)])  # 136: a row of 34 vec4 over 64 invocations
def test_forward_normalises_each_causal_row_and_keeps_its_logsumexp(gpu, BH, T):
    s, keep = _scores(BH, T, T)
    sb, lse = upload(gpu, s), empty(gpu, (BH * T,))
    gpu.dispatch("attention_softmax_forward", [sb, lse], {"rows": BH * T, "T": T})
    m = np.where(keep, s, -np.inf).max(-1, keepdims=True)
    e = np.where(keep, np.exp(np.where(keep, s, 0) - m), 0)
    ref_p = e / e.sum(-1, keepdims=True)
    assert_close(download(gpu, sb, s.shape), ref_p, 1e-6, 1e-5, "P")
    assert_close(download(gpu, lse, (BH * T,)), (m[..., 0] + np.log(e.sum(-1))).reshape(-1), 1e-6, 1e-5, "lse")


@pytest.mark.parametrize("BH,T", [(2, 8), (1, 132)])
def test_backward_recomputes_p_and_projects_dp_onto_each_row(gpu, BH, T):
    s, keep = _scores(BH, T, 5 + T)
    r = np.random.default_rng(T)
    dp = np.where(keep, r.standard_normal(s.shape), np.nan).astype(np.float32)
    lse = (np.log(np.where(keep, np.exp(np.where(keep, s, 0)), 0).sum(-1)) + r.uniform(0, 1, (BH, T))).astype(np.float32)
    sb, dpb = upload(gpu, s), upload(gpu, dp)
    gpu.dispatch("attention_softmax_backward", [sb, dpb, upload(gpu, lse.reshape(-1))], {"rows": BH * T, "T": T})
    p = np.where(keep, np.exp(np.where(keep, s, 0) - lse[..., None]), 0)
    dp0 = np.where(keep, dp, 0)
    ref_ds = p * (dp0 - (p * dp0).sum(-1, keepdims=True))
    assert_close(download(gpu, sb, s.shape), p, 1e-6, 1e-5, "P")
    assert_close(download(gpu, dpb, s.shape), ref_ds, 1e-6, 1e-5, "dS")
