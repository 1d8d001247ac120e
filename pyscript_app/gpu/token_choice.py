"""Choose the next token on the GPU (shaders/choose_token.wgsl), so only its id is read back.

Pure Python (runs in Pyodide). reference/token_choice.py is the spec: greedy for temperature 0,
else softmax(logits / temperature) cut to the top_k largest logits and then to the top_p nucleus,
drawn by inverse CDF in id order with u = rng.sample_uniform(rng.sample_key(seed), step).

    chooser = TokenChooser(ex)
    out = chooser.record(logits_buf, V, Sampling(temperature=0.8, top_k=50, top_p=0.95, seed=1), step=0)
    token, prob = await chooser.read()          # or: token, prob = await chooser.choose(...)

`out` holds 2 u32: [id, bitcast(f32 probability of id in the kept distribution)]; a later dispatch
can read the id from it on the GPU (the embedding reads element 0). The uniform values live in a
buffer of the chooser's own, rewritten by each record(): one choice per submission per chooser
(Executor.write reaches the queue at once, so a second record() before the submit would change the
first dispatch's settings too).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from .. import rng
from .executor import Executor, GpuBuffer, Target

GREEDY, SAMPLE = "choose_token_greedy", "choose_token_sample"


@dataclass(frozen=True)
class Sampling:
    """temperature 0 = greedy; top_k 0 = no top-k cut; top_p 1 = no nucleus cut; seed keys the draws."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if self.temperature and not struct.unpack("<f", struct.pack("<f", self.temperature))[0]:
            raise ValueError(f"temperature {self.temperature!r} rounds to 0 in float32: use 0 for greedy")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an int >= 0, got {self.top_k!r}")
        if not 0.0 <= self.top_p <= 1.0:
            raise ValueError(f"top_p must be in [0, 1], got {self.top_p!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def uniform_values(V: int, sampling: Sampling, step: int) -> dict[str, int | float]:
    """The kernels' uniform values for draw `step` of a generation over V real logits."""
    return {"V": V, "temperature": sampling.temperature or 1.0, "top_k": min(sampling.top_k, 0xFFFFFFFF),
            "top_p": sampling.top_p, "key": rng.sample_key(sampling.seed), "step": step & 0xFFFFFFFF}


def kernel_for(sampling: Sampling) -> str:
    return GREEDY if sampling.greedy else SAMPLE


class TokenChooser:
    """Owns the 8-byte output buffer and the uniform buffer of one generation's choices."""

    def __init__(self, ex: Executor, label: str = "choose") -> None:
        self.ex = ex
        self.out = ex.alloc(8, label=f"{label}.out")
        self.params = ex.uniform_buffer(SAMPLE, label=f"{label}.params")

    def record(self, logits: Target, V: int, sampling: Sampling, step: int) -> GpuBuffer:
        """Record the choice from logits[:V] (the buffer may be longer: padding is ignored); -> out."""
        if V < 1:
            raise ValueError(f"V must be >= 1, got {V}")
        values = uniform_values(V, sampling, step)
        self.ex.write_uniform(self.params, SAMPLE, values)
        self.ex.dispatch(kernel_for(sampling), [logits, self.out], self.params, shape=values)
        return self.out

    async def read(self) -> tuple[int, float]:
        """(id, probability) of the last recorded choice (submits what is recorded)."""
        token, prob = struct.unpack("<If", await self.ex.read(self.out, 8))
        return token, prob

    async def choose(self, logits: Target, V: int, sampling: Sampling, step: int) -> tuple[int, float]:
        self.record(logits, V, sampling, step)
        return await self.read()
