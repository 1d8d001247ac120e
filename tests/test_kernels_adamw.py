"""shaders/adamw.wgsl against reference/adamw.py (AdamW with global-norm clipping) and
reference grad_global_norm / clip_coefficient (grad_norm_partial, then adamw_step reduces the
partials to the clip factor in every workgroup).

Tolerances: norm rtol 1e-5 (f32 sums of up to ~10^5 squares in a different order); after three
AdamW steps params atol 1e-6 + rtol 1e-5, m and v atol 1e-9 + rtol 1e-5."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.config import preset
from pyscript_app.gpu.registry import MAX_NORM_PARTS, NORM_SPAN, adamw_values, ceil_div, grad_norm_values
from pyscript_app.reference.adamw import AdamW, decay_mask
from pyscript_app.reference.ops import clip_coefficient, grad_global_norm

pytestmark = pytest.mark.gpu
HYPER = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1}


def _partials(gpu, grads_buf, n, max_norm, span):
    vals = grad_norm_values(n, max_norm, span)
    partials = empty(gpu, (vals["parts"],))
    gpu.dispatch("grad_norm_partial", [grads_buf, partials], vals)
    return partials


@pytest.mark.parametrize("tuning", [None, {"WG": 64, "PER_INV": 16}, {"WG": 256, "PER_INV": 3}],
                         ids=["default", "wg64x16", "wg256x3"])
@pytest.mark.parametrize("n,span,max_norm", [(1, 256, 1.0), (1000, 256, 1.0), (70_000, 256, 0.5),
                                             (300_001, 4096, 0.5), (5000, 256, None)])
def test_every_adamw_workgroup_applies_the_clip_of_the_global_norm(gpu, n, span, max_norm, tuning):
    """lr 0, beta1 0, no decay: m = grads * clip shows the factor each workgroup computed from the
    partials (70_000 / 256: more partials than invocations), norm_clip the norm workgroup 0 stored.
    With PER_INV > 1 each invocation updates several elements: every element still exactly once."""
    g = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.01
    bgrads = upload(gpu, g)
    partials = _partials(gpu, bgrads, n, max_norm, span)
    zeros = np.zeros(n, np.float32)
    weights, m, v = upload(gpu, np.ones(n, np.float32)), upload(gpu, zeros), upload(gpu, zeros)
    norm_clip = upload(gpu, np.full(2, np.nan, np.float32))
    vals = adamw_values(n, 1, 0.0, beta1=0.0, beta2=0.0, eps=1.0, weight_decay=0.0, max_norm=max_norm, span=span)
    gpu.dispatch("adamw_step", [weights, bgrads, m, v, upload(gpu, np.ones(n, np.float32)), partials, norm_clip],
                 vals, overrides=tuning)
    ref_norm = grad_global_norm(g.astype(np.float64))
    ref_clip = 1.0 if max_norm is None else clip_coefficient(ref_norm, max_norm)
    assert_close(download(gpu, norm_clip, (2,)), np.array([ref_norm, ref_clip]), 0, 1e-5, "[norm, clip]")
    assert_close(download(gpu, m, (n,)), g.astype(np.float64) * ref_clip, 1e-9, 1e-5, "grads * clip")
    assert ceil_div(n, span) == vals["parts"]


def test_the_automatic_span_keeps_the_partials_few():
    for n in (1, 4096, 4096 * 1024, 4096 * 1024 + 1, 123_456_789):
        vals = grad_norm_values(n, 1.0)
        assert vals["parts"] <= MAX_NORM_PARTS and vals["span"] % NORM_SPAN == 0
        assert vals["parts"] == ceil_div(n, vals["span"])
        assert adamw_values(n, 1, 1e-3, 0.9, 0.95, 1e-8, 0.1, 1.0)["parts"] == vals["parts"]
    assert grad_norm_values(4096 * 1024 + 1, None)["span"] == 2 * NORM_SPAN


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
        partials, norm_clip = _partials(gpu, bgrads, P, 1.0, span=None), empty(gpu, (2,))
        gpu.write_uniform(ubuf, "adamw_step", adamw_values(P, t, lr, **HYPER, max_norm=1.0))
        gpu.dispatch("adamw_step", [weights, bgrads, m, v, decay, partials, norm_clip], ubuf, shape={"n": P})
        gpu.submit()  # the uniform buffer is rewritten for the next step
        info = ref.step(ref_flat, grads, lr, max_norm=1.0, **HYPER)
        got_norm, got_clip = download(gpu, norm_clip, (2,))
        assert_close(np.array([got_norm, got_clip]), np.array([info["grad_norm"], info["clip"]]), 0, 1e-5, f"step {t} norm")
    assert_close(download(gpu, weights, (P,)), ref_flat, 1e-6, 1e-5, "params")
    assert_close(download(gpu, m, (P,)), ref.m, 1e-9, 1e-5, "m")
    assert_close(download(gpu, v, (P,)), ref.v, 1e-9, 1e-5, "v")
