"""The attention lesson: the attention probabilities of the build's small model on the reader's names.

    lesson = open_lesson_model(blob)          # lesson_checkpoint.py: nano trained on names at build time
    view = attend(lesson, "emma olivia")      # AttentionView: token labels, (L, H, T, T) probabilities, ...
    look_back(view.maps[0][h])                # how far back head h looks, on average

Pure Python (tinyforward.py computes everything): runs in the page and in the unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..train.sampler import top_candidates
from .lesson_checkpoint import LessonModel
from .tinyforward import Matrix


@dataclass
class AttentionView:
    ids: list[int]  # the T tokens fed to the model: [BOS] name [BOS] name ...
    labels: list[str]  # how each token is written
    maps: list[list[Matrix]]  # (L, H, T, T): maps[l][h][t][s] = how much query t attends to key s
    next_tokens: list[tuple[str, float]]  # the model's most likely next tokens after the last one


def attend(lesson: LessonModel, text: str, k: int = 5) -> AttentionView:
    ids = lesson.context_ids(text)
    out = lesson.tiny.forward(ids)
    nxt = [(lesson.token_label(i), p) for i, p in top_candidates(out.logits[-1], 1.0, k)]
    return AttentionView(ids, [lesson.token_label(i) for i in ids], out.attention, nxt)


def look_back(probs: Matrix) -> float:
    """Mean over queries t of the expected distance t - s to the keys it attends to (0: only itself)."""
    T = len(probs)
    return sum(p * (t - s) for t, row in enumerate(probs) for s, p in enumerate(row)) / T


def bos_share(probs: Matrix, ids: list[int], bos: int) -> float:
    """Mean over queries of the weight on BOS keys: heads that 'park' their attention on the start token."""
    return sum(p for row in probs for s, p in enumerate(row) if ids[s] == bos) / len(probs)
