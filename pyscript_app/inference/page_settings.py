"""The inference page's form: prompt and sampling settings, checked before anything runs. Pure Python.

    s = parse_settings({"prompt": "...", "temperature": "0", "top_k": "0", "top_p": "1", "max_tokens": "64",
                        "seed": "0"})
    s.sampling        # gpu/token_choice.Sampling (temperature 0 = greedy)

A bad value raises InputError with one line for the status (and nothing runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..gpu.token_choice import Sampling
from ..playground.settings import InputError

MAX_NEW_TOKENS = 1024  # GPT-2's whole context


@dataclass(frozen=True)
class GenerationSettings:
    prompt: str
    temperature: float
    top_k: int
    top_p: float
    max_tokens: int
    seed: int

    @property
    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, seed=self.seed)


def _number(form: dict, key: str, label: str, default: str, kind=float):
    raw = str(form.get(key, "") or "").strip() or default
    try:
        value = kind(raw)
    except ValueError:
        raise InputError(f"{label}: {raw!r} is not a{'n integer' if kind is int else ' number'}") from None
    if kind is float and not math.isfinite(value):
        raise InputError(f"{label} must be a finite number")
    return value


def parse_settings(form: dict) -> GenerationSettings:
    temperature = _number(form, "temperature", "Temperature", "0.8")
    if temperature < 0:
        raise InputError("Temperature must be >= 0 (0 = greedy: always the most likely token)")
    top_k = _number(form, "top_k", "Top-k", "0", int)
    if top_k < 0:
        raise InputError("Top-k must be >= 0 (0 = no cut)")
    top_p = _number(form, "top_p", "Top-p", "1")
    if not 0 < top_p <= 1:
        raise InputError("Top-p must be in (0, 1] (1 = no cut)")
    max_tokens = _number(form, "max_tokens", "Max tokens", "64", int)
    if not 1 <= max_tokens <= MAX_NEW_TOKENS:
        raise InputError(f"Max tokens must be 1 to {MAX_NEW_TOKENS}")
    seed = _number(form, "seed", "Seed", "0", int)
    if not 0 <= seed < 2**32:
        raise InputError("Seed must be 0 to 4294967295")
    s = GenerationSettings(str(form.get("prompt", "") or ""), temperature, top_k, top_p, max_tokens, seed)
    try:
        s.sampling  # noqa: B018  (Sampling's own checks, e.g. a temperature that rounds to 0 in f32)
    except ValueError as e:
        raise InputError(str(e)) from None
    return s
