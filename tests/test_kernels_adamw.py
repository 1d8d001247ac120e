"""shaders/adamw.wgsl against reference/adamw.py (AdamW with global-norm clipping) and
reference grad_global_norm / clip_coefficient.

Tolerances: norm rtol 1e-5 (f32 sums of up to ~10^5 squares in a different order); after three
AdamW steps params atol 1e-6 + rtol 1e-5, m and v atol 1e-9 + rtol 1e-5."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.config import preset
from pyscript_app.gpu.registry import adamw_values, ceil_div, grad_norm_values
from pyscript_app.reference.adamw import AdamW, decay_mask
from pyscript_app.reference.ops import clip_coefficient, grad_global_norm

pytestmark = pytest.mark.gpu
HYPER = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1}


def _norm_clip(gpu, grads_buf, n, max_norm, span=256 * 16):
    vals = grad_norm_values(n, max_norm, span)
    partials, norm_clip = empty(gpu, (vals["parts"],)), empty(gpu, (2,))
    gpu.dispatch("grad_norm_partial", [grads_buf, partials], vals)
    gpu.dispatch("grad_norm_finalize", [partials, norm_clip], vals)
    return norm_clip


@pytest.mark.parametrize("n,span,max_norm", [(1, 256, 1.0), (1000, 256, 1.0), (300_001, 4096, 0.5), (5000, 256, None)])
def test_grad_norm_and_clip(gpu, n, span, max_norm):
    g = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.01
    norm_clip = download(gpu, _norm_clip(gpu, upload(gpu, g), n, max_norm, span), (2,))
    ref_norm = grad_global_norm(g.astype(np.float64))
    ref_clip = 1.0 if max_norm is None else clip_coefficient(ref_norm, max_norm)
    assert_close(norm_clip, np.array([ref_norm, ref_clip]), 0, 1e-5, "[norm, clip]")
    assert ceil_div(n, span) == grad_norm_values(n, max_norm, span)["parts"]


def test_adamw_three_steps_match_reference(gpu):
    cfg = preset("nano")
    P = cfg.param_count
    rng = np.random.default_rng(0)
    flat = rng.standard_normal(P).astype(np.float32) * 0.1
    ref = AdamW(cfg)
    ref_flat = flat.copy()
    weights, m, v = upload(gpu, flat), upload(gpu, np.zeros(P, np.float32)), upload(gpu, np.zeros(P, np.float32))
    decay = upload(gpu, decay_mask(cfg))
    ubuf = gpu.uniform_buffer("adamw_step")  # lr and t change every step: a caller-owned buffer
    for t, (lr, gscale) in enumerate([(3e-3, 1.0), (1e-3, 0.001), (2e-3, 0.05)], start=1):
        grads = rng.standard_normal(P).astype(np.float32) * gscale  # step 1 is clipped, step 2 not
        bgrads = upload(gpu, grads)
        norm_clip = _norm_clip(gpu, bgrads, P, max_norm=1.0)
        gpu.write_uniform(ubuf, "adamw_step", adamw_values(P, t, lr, **HYPER))
        gpu.dispatch("adamw_step", [weights, bgrads, m, v, decay, norm_clip], ubuf, shape={"n": P})
        gpu.submit()  # the uniform buffer is rewritten for the next step
        info = ref.step(ref_flat, grads, lr, max_norm=1.0, **HYPER)
        got_norm, got_clip = download(gpu, norm_clip, (2,))
        assert_close(np.array([got_norm, got_clip]), np.array([info["grad_norm"], info["clip"]]), 0, 1e-5, f"step {t} norm")
    assert_close(download(gpu, weights, (P,)), ref_flat, 1e-6, 1e-5, "params")
    assert_close(download(gpu, m, (P,)), ref.m, 1e-9, 1e-5, "m")
    assert_close(download(gpu, v, (P,)), ref.v, 1e-9, 1e-5, "v")
