"""pyscript_app/lessons/attention.py: the attention view of a checkpoint, look-back and BOS share."""

from __future__ import annotations

import math

import pytest

from pyscript_app.lessons.attention import attend, bos_share, look_back
from pyscript_app.lessons.lesson_checkpoint import open_lesson_model
from test_lessons_lesson_checkpoint import tiny_checkpoint


def test_attend_gives_every_layer_and_head_a_causal_distribution():
    tok, cfg, _, blob = tiny_checkpoint(seed=1)
    lesson = open_lesson_model(blob)
    view = attend(lesson, "karimo la", k=4)
    T, mc = len(view.ids), cfg.model_cfg()
    assert view.labels[0] == "⟨BOS⟩" and len(view.labels) == T
    assert len(view.maps) == mc.n_layer and all(len(layer) == mc.n_head for layer in view.maps)
    for probs in view.maps[0]:
        assert all(math.isclose(sum(row), 1.0) for row in probs)
        assert all(probs[t][s] == 0.0 for t in range(T) for s in range(t + 1, T))
    assert len(view.next_tokens) == 4
    assert view.next_tokens == sorted(view.next_tokens, key=lambda x: -x[1])


def test_look_back_and_bos_share_on_hand_made_maps():
    diagonal = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    previous = [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    assert look_back(diagonal) == 0.0
    assert look_back(previous) == pytest.approx(2 / 3)
    assert bos_share(previous, [9, 1, 2], bos=9) == pytest.approx(2 / 3)
    assert bos_share(diagonal, [9, 1, 9], bos=9) == pytest.approx(2 / 3)
