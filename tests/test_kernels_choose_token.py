"""shaders/choose_token.wgsl through gpu/token_choice.py against reference/token_choice.py.

The chosen id must EQUAL the reference's for the same logits, settings and draw u (the kernel derives
u from (key, step) itself, so equal ids also check rng.sample_uniform). The GPU sums float32 in
another order than the float64 reference, so draws whose decision lies within rounding of a boundary
are skipped: each case takes the first steps whose decision_margin exceeds `tol` (relative to the
kept mass). The probability written beside the id: rtol 1e-4."""

import math

import numpy as np
import pytest

from _gpu import gpu  # noqa: F401
from pyscript_app import rng
from pyscript_app.gpu.executor import run_sync
from pyscript_app.gpu.token_choice import Sampling, TokenChooser, uniform_values
from pyscript_app.reference.token_choice import choice_probability, choose_token, decision_margin

pytestmark = pytest.mark.gpu

GPT2_V, PADDED_V = 50257, 50304


def _normal(V, scale, seed=0):
    return (np.random.default_rng([V, seed]).standard_normal(V) * scale).astype(np.float32)


def _check(ex, logits, V, sampling, draws=6, tol=1e-5, max_steps=60, pad_value=None):
    """Upload logits (padded to PADDED_V with pad_value if given), choose `draws` times, compare."""
    row = np.asarray(logits, np.float32)
    if pad_value is not None:
        row = np.concatenate([row, np.full(PADDED_V - V, pad_value, np.float32)])
    buf = ex.upload(row.tobytes())
    chooser = TokenChooser(ex)
    key = rng.sample_key(sampling.seed)
    args = (row[:V], sampling.temperature, sampling.top_k, sampling.top_p)
    checked, chosen = 0, []
    for step in range(max_steps):
        u = rng.sample_uniform(key, step)
        if decision_margin(*args, u) <= tol:
            continue
        token, prob = run_sync(chooser.choose(buf, V, sampling, step))
        want = choose_token(*args, u)
        assert token == want, f"step {step} (u = {u}): GPU chose {token}, reference {want}"
        assert math.isclose(prob, choice_probability(*args, want), rel_tol=1e-4), (prob, step)
        chosen.append(token)
        checked += 1
        if checked == draws:
            return chosen
    pytest.fail(f"only {checked} of {draws} draws were clear of rounding")


@pytest.mark.parametrize("temperature,top_k,top_p", [
    (0.0, 0, 1.0), (1.0, 0, 1.0), (0.8, 40, 0.95), (1.0, 0, 0.5), (0.7, 1000, 1.0), (1.0, 1, 1.0),
    (1.0, 0, 1e-6)])
def test_gpt2_vocabulary_with_padding(gpu, temperature, top_k, top_p):
    """V = 50257 in a 50304-float buffer whose padding (1e30) would win every choice if it were read."""
    _check(gpu, _normal(GPT2_V, 3.0), GPT2_V, Sampling(temperature, top_k, top_p, seed=1), draws=4, pad_value=1e30)


def test_top_k_1_and_tiny_top_p_are_greedy(gpu):
    l = _normal(5000, 2.0, 1)
    for s in (Sampling(1.0, 1, 1.0, seed=2), Sampling(1.5, 0, 1e-7, seed=3), Sampling(1.0, 7, 0.0, seed=4)):
        assert set(_check(gpu, l, 5000, s, draws=3)) == {int(np.argmax(l))}


@pytest.mark.parametrize("sampling", [Sampling(0.0), Sampling(1.0, 0, 1.0, 5), Sampling(1.0, 1, 1.0, 6),
                                      Sampling(0.5, 3, 1e-3, 7)])
def test_all_equal_logits(gpu, sampling):
    """One tie group: greedy takes id 0; top-k and top-p keep the whole group; the draw is uniform.
    The sums are exact here (weights 1), so a tighter margin is safe."""
    chosen = _check(gpu, np.full(GPT2_V, 0.25, np.float32), GPT2_V, sampling, draws=4, tol=1e-6)
    if sampling.temperature == 0:
        assert chosen == [0] * 4
    else:
        assert len(set(chosen)) == 4


@pytest.mark.parametrize("fill", [-np.inf, -1e30])
def test_banned_and_huge_negative_logits(gpu, fill):
    V = 3001
    l = np.full(V, fill, np.float32)
    live = np.array([5, 17, 1000, 2999])
    l[live] = [0.5, 1.0, -0.5, 0.9]
    for s in (Sampling(1.0, 0, 1.0, 1), Sampling(2.0, 100, 1.0, 2), Sampling(1.0, 3, 0.99, 3), Sampling(0.0)):
        assert set(_check(gpu, l, V, s, draws=5)) <= set(live.tolist())


def test_all_banned_falls_back_to_the_lowest_id(gpu):
    _check(gpu, np.full(300, -np.inf, np.float32), 300, Sampling(1.0, 5, 0.5), draws=2)


@pytest.mark.parametrize("temperature", [1e-4, 1e4])
def test_extreme_temperatures(gpu, temperature):
    """1e-4: all the mass on the max; 1e4: nearly uniform (V = 5000 keeps each token's share of the
    mass well above float32 rounding; top_p 0.91 cuts the 50 near-equal top-k tokens mid-token)."""
    l = _normal(5000, 3.0, 2)
    for s in (Sampling(temperature, 0, 1.0, 8), Sampling(temperature, 50, 0.91, 9)):
        chosen = _check(gpu, l, 5000, s, draws=4)
        if temperature < 1:
            assert set(chosen) == {int(np.argmax(l))}


@pytest.mark.parametrize("V", [1, 7, 255, 257, 1030])
def test_small_and_ragged_rows(gpu, V):
    l = _normal(V, 1.5, 3)
    for s in (Sampling(0.0), Sampling(1.0, 0, 1.0, 1), Sampling(0.9, 3, 0.8, 2), Sampling(1.2, V + 5, 0.5, 3)):
        _check(gpu, l, V, s, draws=3)


def test_ties_at_the_top_k_and_top_p_boundaries(gpu):
    """Groups of equal logits straddling the k-th place and the nucleus cut stay whole."""
    l = np.repeat(np.array([3.0, 2.0, 1.0, 0.0], np.float32), [2, 5, 50, 943])
    l = l[np.random.default_rng(0).permutation(l.size)]
    for s in (Sampling(1.0, 4, 1.0, 1), Sampling(1.0, 0, 0.6, 2), Sampling(0.7, 60, 0.97, 3)):
        _check(gpu, l, l.size, s, draws=5)


def test_settings_are_validated():
    for bad in (dict(temperature=-1.0), dict(temperature=float("nan")), dict(temperature=1e-50),
                dict(top_k=-1), dict(top_k=2.5), dict(top_p=1.5), dict(top_p=-0.1)):
        with pytest.raises(ValueError):
            Sampling(**bad)
    v = uniform_values(10, Sampling(0.0, seed=3), 2**32 + 5)
    assert v["temperature"] == 1.0 and v["step"] == 5 and v["key"] == rng.sample_key(3)
