"""Prompt -> new tokens for an imported GPT-2 on the numpy reference, timed as the GPU path is.

One batched prefill of the prompt, then one KV-cached decode step per token (reference/gpt2.py);
each next token is chosen by `choose(logits (V,) float32, step) -> id`, so the same sampling rule
(reference/token_choice.py) serves here and on the GPU. Generation stops at `max_new_tokens`, at a
stop id (which is not yielded), or when the context (n_positions) is full.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..reference import gpt2
from ..reference.gpt2_config import GPT2Config
from ..reference.kvcache import KVCache


@dataclass
class Timing:
    """Seconds to the first new token (the prefill and its choice) and for each later token."""
    first_token_s: float = 0.0
    step_s: list[float] = field(default_factory=list)

    @property
    def ms_per_token(self) -> float:
        return 1000.0 * sum(self.step_s) / len(self.step_s) if self.step_s else float("nan")


def generate(cfg: GPT2Config, params: dict[str, np.ndarray], prompt: list[int], max_new_tokens: int,
             choose: Callable[[np.ndarray, int], int], stop_ids: frozenset[int] = frozenset(),
             timing: Timing | None = None) -> Iterator[int]:
    """Yield up to max_new_tokens ids after `prompt` (1 <= len(prompt) <= n_positions)."""
    if not 1 <= len(prompt) <= cfg.n_positions:
        raise ValueError(f"the prompt has {len(prompt)} tokens; it needs 1 to {cfg.n_positions}")
    timing = timing if timing is not None else Timing()
    cache = KVCache(cfg, batch=1, dtype=params["wte.weight"].dtype)
    t0 = time.perf_counter()
    logits = gpt2.prefill(cfg, params, cache, np.asarray([prompt]))[0]  # (V,)
    pos = len(prompt)
    for step in range(max_new_tokens):
        token = choose(logits, step)
        now = time.perf_counter()
        if step == 0:
            timing.first_token_s = now - t0
        else:
            timing.step_s.append(now - t0)
        if token in stop_ids:
            return
        yield token
        if pos >= cfg.n_positions or step + 1 == max_new_tokens:
            return
        t0 = time.perf_counter()
        logits = gpt2.decode_step(cfg, params, cache, np.asarray([token]), pos)[0]  # (V,)
        pos += 1
