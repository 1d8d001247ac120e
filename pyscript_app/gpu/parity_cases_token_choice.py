"""The parity case of choose_token.wgsl (reference/token_choice.py). Part of gpu/parity_cases.py's table
(see its docstring); numpy-only, never in the browser.
"""

from __future__ import annotations

import numpy as np

from .. import rng
from ..reference.token_choice import choice_probability, choose_token, decision_margin
from .parity_case_builder import CaseBuilder, ParityCase, _rng
from .token_choice import Sampling, kernel_for, uniform_values

CHOICE_MARGIN = 1e-5  # the draws used are this far (relative to the kept mass) from a float32 flip


# --- choose_token.wgsl: the id exactly; its probability rtol 1e-4 ------------------------------------
def _choose_token(V: int, padded: int, settings: tuple[tuple[float, int, float], ...]):
    """Logits (V,) scale 3 in a (padded,) buffer whose padding (1e30) would win if it were read; per
    setting (temperature, top_k, top_p) the first step whose draw is clear of rounding."""
    def make(b: CaseBuilder) -> None:
        row = (_rng(V, padded, 12).standard_normal(padded) * 3).astype(np.float32)
        row[V:] = 1e30
        l = row[:V]
        b.input("logits", row)
        for n, (temperature, top_k, top_p) in enumerate(settings):
            s = Sampling(temperature, top_k, top_p, seed=n)
            key = rng.sample_key(s.seed)
            step = next(t for t in range(1000)
                        if decision_margin(l, temperature, top_k, top_p, rng.sample_uniform(key, t)) > CHOICE_MARGIN)
            want = choose_token(l, temperature, top_k, top_p, rng.sample_uniform(key, step))
            b.output(f"out{n}", 2)
            b.dispatch(kernel_for(s), ["logits", f"out{n}"], uniform_values(V, s, step))
            what = f"T={temperature} top_k={top_k} top_p={top_p} step={step}"
            b.expect_bits(f"out{n}", np.array([want], np.uint32), f"id ({what})")
            b.expect_close(f"out{n}", [choice_probability(l, temperature, top_k, top_p, want)], 0, 1e-4,
                           f"probability ({what})", offset=1)
    kernels = tuple(sorted({kernel_for(Sampling(t, k, p)) for t, k, p in settings}))
    return ParityCase(f"choose_token_V{V}_padded{padded}", kernels, make)
