"""The inference page's generation loops: tokens one by one to a callback, a Stop that takes effect
after the current token, and the timings the page shows. Pure Python (runs in Pyodide; tests drive it
with fakes or the native GPU).

GPT-2 (gpu/gpt2_model.py + gpu/token_choice.py): the prompt in one batched prefill, then one KV-cached
step per token; the choice is made on the GPU and only the chosen id (8 bytes) is read back. The same
ids as Gpt2Decoder.generate and `tabgpt sample --backend gpu` for the same settings (seed n = the
CLI's first sample), but it ends early at <|endoftext|> (not shown, as the CLI cuts it) or on Stop.

Our own family (a playground/`tabgpt train` checkpoint): train/sampler.generate_ids on the backend's
KV-cached decoder, the choice made on the host from the logits (temperature, top-k; top-p does not
apply there).

Timing: `first_token_ms` from the start of the prefill to the first id on the host; `ms_per_token`
the mean time between later ids (what a reader waits per token, the page's updates included).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Generation:
    ids: list[int] = field(default_factory=list)
    first_token_ms: float | None = None
    step_ms: list[float] = field(default_factory=list)
    reason: str = ""  # "max_tokens" | "end_of_text" | "context" | "stopped"

    @property
    def ms_per_token(self) -> float | None:
        return sum(self.step_ms) / len(self.step_ms) if self.step_ms else None


class _Clock:
    def __init__(self, gen: Generation, clock: Callable[[], float]) -> None:
        self.gen, self.clock, self.last = gen, clock, clock()

    def tick(self) -> None:
        now = self.clock()
        ms = 1000.0 * (now - self.last)
        if self.gen.first_token_ms is None:
            self.gen.first_token_ms = ms
        else:
            self.gen.step_ms.append(ms)
        self.last = now


def gpt2_budget(n_positions: int, prompt_len: int, max_tokens: int) -> int:
    """New tokens that fit: the last one is never fed back, so prompt + new - 1 <= n_positions."""
    return max(0, min(max_tokens, n_positions - prompt_len + 1))


async def generate_gpt2(decoder, chooser, prompt: Sequence[int], max_tokens: int, sampling, *,
                        stop_ids: frozenset[int] = frozenset(), on_token: Callable[[int], None] = lambda _: None,
                        should_stop: Callable[[], bool] = lambda: False,
                        clock: Callable[[], float] = time.perf_counter) -> Generation:
    """decoder: a Gpt2Decoder; chooser: a TokenChooser; 1 <= len(prompt) <= n_positions."""
    cfg = decoder.cfg
    if not 1 <= len(prompt) <= cfg.n_positions:
        raise ValueError(f"the prompt is {len(prompt)} tokens; the model's context is {cfg.n_positions}")
    budget = gpt2_budget(cfg.n_positions, len(prompt), max_tokens)
    gen = Generation(reason="max_tokens" if budget == max_tokens else "context")
    t = _Clock(gen, clock)

    def arrived(token: int) -> bool:
        t.tick()
        if token in stop_ids:
            gen.reason = "end_of_text"
            return True
        gen.ids.append(token)
        on_token(token)
        if should_stop():
            gen.reason = "stopped"
            return True
        return False

    await decoder.generate(prompt, budget, chooser, sampling, on_token=arrived)
    return gen


async def generate_own(backend, context: Sequence[int], max_tokens: int, temperature: float, top_k: int,
                       seed: int, *, stop_ids: frozenset[int], on_token: Callable[[int], None] = lambda _: None,
                       should_stop: Callable[[], bool] = lambda: False,
                       clock: Callable[[], float] = time.perf_counter) -> Generation:
    """Our family on a GpuBackend (or any Backend): context = [BOS] + prompt ids (sliding past the
    model's context as the playground's sampler does)."""
    from ..train.sampler import generate_ids

    gen = Generation(reason="end_of_text")
    t = _Clock(gen, clock)
    stream = generate_ids(backend, list(context), max_tokens=max_tokens, temperature=temperature, top_k=top_k,
                          stop_ids=set(stop_ids), rand=random.Random(seed))
    async for token in stream:
        t.tick()
        gen.ids.append(token)
        on_token(token)
        if len(gen.ids) == max_tokens:
            gen.reason = "max_tokens"
        if should_stop():
            gen.reason = "stopped"
            await stream.aclose()
            break
    return gen


def timing_text(gen: Generation) -> tuple[str, str]:
    """(time to first token, ms/token) as the page shows them."""
    first = "–" if gen.first_token_ms is None else f"{gen.first_token_ms:,.0f} ms"
    per = gen.ms_per_token
    return first, "–" if per is None else f"{per:,.1f} ms/token"


def done_text(gen: Generation) -> str:
    why = {"max_tokens": "the token budget", "end_of_text": "<|endoftext|>", "context": "the model's context",
           "stopped": "Stop"}.get(gen.reason, gen.reason)
    return f"Generated {len(gen.ids)} tokens; ended at {why}."
