"""The sampling lesson: turn next-token logits into text, one token at a time, in plain Python.

    gen = Generation(lesson, prompt="em", seed=0)     # lesson: lesson_checkpoint.LessonModel
    rows = gen.candidates(temperature=0.8, top_k=5)   # [Candidate]: the distribution the next draw uses
    token = gen.advance(temperature=0.8, top_k=5)     # draw (sampler.choose), append; None when it stops
    gen.text()                                         # the prompt and what was generated

The draw is sampler.choose with a seeded random.Random, exactly what `tabgpt sample` uses; the
logits come from tinyforward.TinyGPT over the last T tokens (the CLI keeps a KV cache instead and,
past the context, restarts it from the last T - 1 tokens: for names, which are a few tokens
long, the two never differ).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..data.bpe import normalize
from ..train.sampler import choose, top_candidates
from .lesson_checkpoint import LessonModel

MAX_NEW_TOKENS = 24


@dataclass(frozen=True)
class Candidate:
    token: int
    p_model: float  # softmax(logits): the model's own probability (temperature 1)
    p_draw: float  # the probability the next draw picks it, after temperature and top-k (0 when cut)


def draw_distribution(logits, temperature: float, top_k: int) -> dict[int, float]:
    """token -> probability under sampler.choose's rule: greedy at temperature 0; else softmax of
    logits / temperature over the top_k largest logits (top_k = 0: all of them)."""
    V = len(logits)
    if temperature <= 0:
        return {max(range(V), key=logits.__getitem__): 1.0}
    kept = top_candidates(logits, temperature, top_k if 0 < top_k < V else V)
    total = sum(p for _, p in kept)
    return {i: p / total for i, p in kept}


def candidates(logits, temperature: float, top_k: int, n: int = 8) -> list[Candidate]:
    """The n tokens the model finds most likely, with their drawing probability at these settings."""
    draw = draw_distribution(logits, temperature, top_k)
    return [Candidate(i, p, draw.get(i, 0.0)) for i, p in top_candidates(logits, 1.0, n)]


def entropy(probs) -> float:
    """Shannon entropy in nats: ln(k) for k equally likely choices, 0 for a sure one."""
    return -sum(p * math.log(p) for p in probs if p > 0)


class Generation:
    """A prompt being continued token by token ([BOS] + prompt, as the CLI's sampler starts)."""

    def __init__(self, lesson: LessonModel, prompt: str = "", seed: int = 0) -> None:
        self.lesson = lesson
        tok = lesson.tokenizer
        self.ids = [tok.bos] + tok.encode(normalize(prompt))
        self.n_prompt = len(self.ids)
        self.rand = random.Random(seed)
        self.stopped = False
        self.stop_token: int | None = None  # the BOS / EOS that ended the generation
        self.chosen: list[tuple[int, float]] = []  # each generated token with its drawing probability
        self._logits = None

    def logits(self):
        """Next-token logits (V,) after the current tokens (computed once per position)."""
        if self._logits is None:
            T = self.lesson.cfg.block_size
            self._logits = self.lesson.tiny.forward(self.ids[-T:]).logits[-1]
        return self._logits

    def candidates(self, temperature: float, top_k: int, n: int = 8) -> list[Candidate]:
        return candidates(self.logits(), temperature, top_k, n)

    def advance(self, temperature: float, top_k: int) -> int | None:
        """Draw the next token. A stop token (BOS or EOS: the name is over) or MAX_NEW_TOKENS ends
        the generation; the stop token is recorded in `chosen` but not appended."""
        if self.stopped:
            return None
        logits = self.logits()
        token = choose(logits, temperature, top_k, self.rand)
        self.chosen.append((token, draw_distribution(logits, temperature, top_k)[token]))
        tok = self.lesson.tokenizer
        if token in (tok.bos, tok.eos) or len(self.chosen) >= MAX_NEW_TOKENS:
            self.stopped = True
            if token in (tok.bos, tok.eos):
                self.stop_token = token
                return None
        self.ids.append(token)
        self._logits = None
        return token

    def text(self) -> str:
        return self.lesson.tokenizer.decode(self.ids[1:])


def sample_names(lesson: LessonModel, n: int, temperature: float, top_k: int, seed: int) -> list[str]:
    """n whole names from an empty prompt, each drawn with its own seed taken from `seed`."""
    out = []
    rand_seed = random.Random(seed)
    for _ in range(n):
        gen = Generation(lesson, "", rand_seed.randrange(1 << 30))
        while gen.advance(temperature, top_k) is not None:
            pass
        out.append(gen.text())
    return out
