"""pyscript_app/lessons/sampling.py: the drawing distribution, the stepper, whole names."""

from __future__ import annotations

import math
import random

import pytest

from pyscript_app.lessons.lesson_checkpoint import open_lesson_model
from pyscript_app.lessons.sampling import (MAX_NEW_TOKENS, Generation, candidates, draw_distribution, entropy,
                                           sample_names)
from pyscript_app.train.sampler import choose
from test_lessons_lesson_checkpoint import tiny_checkpoint

LOGITS = [2.0, 1.0, 0.0, -1.0, 3.0]


def test_draw_distribution_follows_temperature_and_top_k():
    full = draw_distribution(LOGITS, 1.0, 0)
    z = sum(math.exp(v) for v in LOGITS)
    assert full[4] == pytest.approx(math.exp(3.0) / z) and sum(full.values()) == pytest.approx(1.0)
    top2 = draw_distribution(LOGITS, 1.0, 2)
    assert set(top2) == {4, 0} and top2[4] == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert draw_distribution(LOGITS, 0.0, 0) == {4: 1.0}
    assert entropy(draw_distribution(LOGITS, 0.5, 0).values()) < entropy(full.values()) < \
        entropy(draw_distribution(LOGITS, 2.0, 0).values())


def test_draw_distribution_is_what_choose_draws_from():
    rand, counts = random.Random(0), [0] * len(LOGITS)
    for _ in range(4000):
        counts[choose(LOGITS, 0.7, 3, rand)] += 1
    for token, p in draw_distribution(LOGITS, 0.7, 3).items():
        assert counts[token] / 4000 == pytest.approx(p, abs=0.03)
    assert counts[3] == counts[2] == 0


def test_candidates_mark_tokens_cut_by_top_k():
    rows = candidates(LOGITS, 1.0, 2, n=3)
    assert [r.token for r in rows] == [4, 0, 1]
    assert rows[2].p_draw == 0.0 and rows[2].p_model > 0
    assert rows[0].p_draw > rows[0].p_model


def test_generation_steps_until_a_stop_token_and_is_seeded():
    tok, _, _, blob = tiny_checkpoint(seed=2)
    lesson = open_lesson_model(blob)
    gen = Generation(lesson, "ka", seed=5)
    assert gen.ids == [tok.bos] + tok.encode("ka") and gen.n_prompt == len(gen.ids)
    assert gen.candidates(1.0, 0, n=4)[0].p_model >= gen.candidates(1.0, 0, n=4)[1].p_model
    steps = 0
    while gen.advance(1.0, 0) is not None:
        steps += 1
    assert gen.stopped and len(gen.chosen) <= MAX_NEW_TOKENS
    assert gen.advance(1.0, 0) is None  # stays stopped
    assert gen.text().startswith("ka") and len(gen.ids) == gen.n_prompt + steps
    if gen.stop_token is not None:
        assert gen.stop_token in (tok.bos, tok.eos) and gen.stop_token == gen.chosen[-1][0]
    again = Generation(lesson, "ka", seed=5)
    while again.advance(1.0, 0) is not None:
        pass
    assert again.ids == gen.ids


def test_greedy_generation_follows_the_argmax():
    _, _, _, blob = tiny_checkpoint(seed=3)
    lesson = open_lesson_model(blob)
    gen = Generation(lesson, "", seed=0)
    logits = gen.logits()
    best = max(range(len(logits)), key=logits.__getitem__)
    assert gen.advance(0.0, 0) in (best, None)
    assert gen.chosen == [(best, 1.0)]


def test_sample_names_gives_n_texts():
    _, _, _, blob = tiny_checkpoint(seed=4)
    names = sample_names(open_lesson_model(blob), 3, 0.8, 5, seed=1)
    assert len(names) == 3 and all(isinstance(n, str) for n in names)
    assert names == sample_names(open_lesson_model(blob), 3, 0.8, 5, seed=1)
