"""reference/token_choice.py: greedy, temperature, top-k, top-p and their combinations against
Hugging Face's warpers (TemperatureLogitsWarper -> TopKLogitsWarper -> TopPLogitsWarper, the order of
`generate`) and an inverse-CDF draw written here on torch; the draw rng.sample_uniform; a hypothesis
test on random logits. The oracle runs in float64 and the inputs avoid ties inside the top-p cut
(the one documented difference) and decisions within rounding of a boundary (decision_margin)."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from _require import module_available, require
from pyscript_app import rng
from pyscript_app.reference.token_choice import (choice_probability, choose_token, decision_margin,
                                                 token_weights)

NEG_INF = -np.inf


@pytest.fixture(scope="module")
def hf():
    require(module_available("torch") and module_available("transformers"),
            "torch / transformers are not installed (pip install -e '.[test,bench]')")
    import torch
    from transformers.generation.logits_process import (TemperatureLogitsWarper, TopKLogitsWarper,
                                                        TopPLogitsWarper)

    def kept(logits, temperature, top_k, top_p):
        """(V,) bool: the tokens Hugging Face's warpers leave finite (float64 throughout)."""
        scores = torch.tensor(np.asarray(logits, np.float64)[None])
        scores = TemperatureLogitsWarper(temperature)(None, scores)
        if top_k:
            scores = TopKLogitsWarper(top_k)(None, scores)
        if top_p < 1.0:
            scores = TopPLogitsWarper(top_p)(None, scores)
        return torch.isfinite(scores[0]).numpy(), scores

    def draw(logits, temperature, top_k, top_p, u):
        """Inverse CDF in id order over Hugging Face's filtered softmax (no multinomial)."""
        _, scores = kept(logits, temperature, top_k, top_p)
        probs = torch.softmax(scores[0], dim=-1)
        cum = torch.cumsum(probs, dim=0)
        return int(torch.searchsorted(cum, torch.tensor([u * float(cum[-1])], dtype=cum.dtype), right=True)[0])

    return kept, draw


def _logits(V, scale, seed):
    return (np.random.default_rng([V, seed]).standard_normal(V) * scale).astype(np.float32)


# --- greedy -------------------------------------------------------------------------------------
def test_greedy_is_argmax_with_ties_to_the_lowest_id_and_ignores_the_rest():
    l = np.array([0.5, 2.0, -1.0, 2.0, 1.9], np.float32)
    for k, p, u in [(0, 1.0, 0.0), (1, 0.1, 0.99), (3, 0.5, 0.5)]:
        assert choose_token(l, 0.0, k, p, u) == 1
    assert choose_token(np.array([-0.0, 0.0, -1.0], np.float32), 0.0) == 0  # -0 == +0
    assert choice_probability(l, 0.0, 0, 1.0, 1) == 1.0


def test_no_finite_maximum_falls_back_to_greedy():
    assert choose_token(np.full(5, NEG_INF), 1.0, 0, 1.0, 0.7) == 0
    assert choose_token(np.array([0.0, np.inf, 3.0, np.inf]), 1.0, 2, 0.5, 0.9) == 1


# --- temperature, top-k, top-p against Hugging Face ------------------------------------------------
SETTINGS = [  # (temperature, top_k, top_p)
    (1.0, 0, 1.0), (0.7, 0, 1.0), (1.5, 50, 1.0), (1.0, 1, 1.0), (1.0, 0, 0.9), (0.8, 0, 0.05),
    (1.0, 40, 0.95), (0.5, 5, 0.5), (2.0, 300, 0.99), (1.0, 2000, 0.7), (1e-3, 0, 0.9), (1e3, 10, 0.3),
]


@pytest.mark.parametrize("temperature,top_k,top_p", SETTINGS)
def test_kept_set_and_draw_equal_hugging_face(hf, temperature, top_k, top_p):
    kept, draw = hf
    l = _logits(1000, 3.0, 0)
    ours = token_weights(l, temperature, top_k, top_p) > 0
    theirs, _ = kept(l, temperature, top_k, top_p)
    np.testing.assert_array_equal(ours, theirs)
    key = rng.sample_key(7)
    for step in range(20):
        u = rng.sample_uniform(key, step)
        if decision_margin(l, temperature, top_k, top_p, u) < 1e-9:
            continue
        assert choose_token(l, temperature, top_k, top_p, u) == draw(l, temperature, top_k, top_p, u)


def test_top_k_keeps_ties_with_the_kth_like_hugging_face(hf):
    kept, _ = hf
    l = np.array([1.0, 3.0, 2.0, 2.0, 2.0, 0.0, 3.0], np.float32)
    for k in range(1, 8):
        np.testing.assert_array_equal(token_weights(l, 1.0, k) > 0, kept(l, 1.0, k, 1.0)[0])
    assert (token_weights(l, 1.0, 3) > 0).sum() == 5  # 3, 3 and all three 2s


def test_top_p_keeps_the_smallest_prefix_reaching_p_and_always_the_top():
    e = np.array([0.5, 0.3, 0.15, 0.05])
    l = np.log(e)
    assert (token_weights(l, 1.0, 0, 0.5) > 0).tolist() == [True, False, False, False]  # 0.5 reaches 0.5
    assert (token_weights(l, 1.0, 0, 0.51) > 0).tolist() == [True, True, False, False]
    assert (token_weights(l, 1.0, 0, 0.9) > 0).tolist() == [True, True, True, False]
    assert (token_weights(l, 1.0, 0, 0.0) > 0).tolist() == [True, False, False, False]
    # within the top-k set: top-2 renormalises to 0.625 / 0.375, so p = 0.6 keeps only the first
    assert (token_weights(l, 1.0, 2, 0.6) > 0).tolist() == [True, False, False, False]
    assert (token_weights(l, 1.0, 2, 0.63) > 0).tolist() == [True, True, False, False]


def test_top_p_keeps_or_removes_a_group_of_equal_logits_whole():
    l = np.log(np.array([0.4, 0.2, 0.2, 0.2]))
    assert (token_weights(l, 1.0, 0, 0.5) > 0).tolist() == [True, True, True, True]
    assert (token_weights(l, 1.0, 0, 0.4) > 0).tolist() == [True, False, False, False]


def test_banned_tokens_are_never_drawn_and_probabilities_renormalise():
    l = np.array([1.0, NEG_INF, 0.5, NEG_INF, 0.25], np.float32)
    w = token_weights(l, 1.0, 4, 1.0)
    assert w[1] == w[3] == 0
    key = rng.sample_key(1)
    picks = {choose_token(l, 1.0, 0, 1.0, rng.sample_uniform(key, s)) for s in range(200)}
    assert picks == {0, 2, 4}
    probs = [choice_probability(l, 1.0, 0, 1.0, i) for i in (0, 2, 4)]
    assert math.isclose(sum(probs), 1.0) and math.isclose(probs[0], 1 / (1 + math.exp(-0.5) + math.exp(-0.75)))


def test_draw_is_the_inverse_cdf_in_id_order():
    l = np.log(np.array([0.1, 0.6, 0.3]))
    for u, want in [(0.0, 0), (0.099, 0), (0.101, 1), (0.69, 1), (0.71, 2), (0.999, 2)]:
        assert choose_token(l, 1.0, 0, 1.0, u) == want
    assert choose_token(np.zeros(4), 1.0, 1, 1.0, 0.6) == 2  # top_k 1 with 4 ties keeps all four


def test_decision_margin_measures_the_distance_to_the_nearest_boundary():
    l = np.log(np.array([0.1, 0.6, 0.3]))
    assert math.isclose(decision_margin(l, 1.0, 0, 1.0, 0.15), 0.05)
    assert math.isclose(decision_margin(l, 1.0, 0, 0.62, 0.5), 0.02)  # 0.6 above the cut's 0.62
    assert decision_margin(l, 0.0, 0, 1.0, 0.5) == math.inf


# --- the draw ---------------------------------------------------------------------------------
def test_sample_uniform_is_24_bit_and_uniform():
    key = rng.sample_key(123)
    u = np.array([rng.sample_uniform(key, s) for s in range(20000)])
    assert np.all((u >= 0) & (u < 1)) and np.all(u * 2**24 == np.floor(u * 2**24))
    assert abs(u.mean() - 0.5) < 0.01 and abs(np.histogram(u, 10, (0, 1))[0] / 2000 - 1).max() < 0.1
    assert rng.sample_key(123) != rng.sample_key(124)
    assert rng.sample_uniform(key, 5) == (rng.pcg(key ^ rng.pcg(5)) >> 8) / 2**24


def test_draws_follow_the_kept_distribution():
    l = _logits(20, 1.0, 3)
    key = rng.sample_key(0)
    n = 3000
    counts = np.bincount([choose_token(l, 0.9, 6, 0.9, rng.sample_uniform(key, s)) for s in range(n)], minlength=20)
    w = token_weights(l, 0.9, 6, 0.9)
    expected = n * w / w.sum()
    assert np.all(counts[w == 0] == 0)
    assert np.all(np.abs(counts - expected) <= 5 * np.sqrt(expected) + 1)


# --- hypothesis: random logits and settings ---------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(V=st.integers(1, 300), scale=st.sampled_from([0.1, 1.0, 5.0, 30.0]), seed=st.integers(0, 2**31),
       temperature=st.sampled_from([0.0, 0.3, 1.0, 2.5]), top_k=st.integers(0, 320),
       top_p=st.sampled_from([1.0, 0.99, 0.9, 0.5, 0.1, 1e-4]), u=st.floats(0, 1, exclude_max=True))
def test_random_logits_agree_with_hugging_face(hf, V, scale, seed, temperature, top_k, top_p, u):
    kept, draw = hf
    l = _logits(V, scale, seed)
    assume(np.unique(l).size == V)  # top-p cuts ties differently (documented)
    got = choose_token(l, temperature, top_k, top_p, u)
    if temperature == 0:
        assert got == int(np.argmax(l))
        return
    assume(decision_margin(l, temperature, top_k, top_p, u) > 1e-9)
    args = (l, temperature, top_k, top_p)
    np.testing.assert_array_equal(token_weights(*args) > 0, kept(*args)[0])
    assert got == draw(*args, u)
