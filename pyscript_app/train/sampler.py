"""Text generation with a KV cache, on any backend (pure Python, async).

A sample starts from [BOS] + encode(normalize(prompt)) — documents are preceded by BOS in the
training stream, so BOS means "start of a document". Generation stops when the model emits BOS or
EOS (end of document) or after max_tokens new tokens. Past the model's context the window slides:
the cache is rebuilt from the last block_size - 1 tokens, then decoding continues.

Next-token choice: logits / temperature, keep the top_k largest (top_k=0: all), softmax, draw with
a seeded random.Random. temperature=0 means greedy (argmax).
"""

from __future__ import annotations

import math
import random
from typing import AsyncIterator

from .backend import Backend
from ..data.bpe import normalize


def choose(logits, temperature: float, top_k: int, rand: random.Random) -> int:
    """Pick a token id from a length-V sequence of logits."""
    if temperature <= 0:
        return max(range(len(logits)), key=logits.__getitem__)
    ids = range(len(logits))
    if 0 < top_k < len(logits):
        ids = sorted(ids, key=logits.__getitem__, reverse=True)[:top_k]
    scaled = [(i, logits[i] / temperature) for i in ids]
    m = max(s for _, s in scaled)
    weights = [math.exp(s - m) for _, s in scaled]
    r = rand.random() * sum(weights)
    for (i, _), w in zip(scaled, weights):
        r -= w
        if r <= 0:
            return i
    return scaled[-1][0]


def top_candidates(logits, temperature: float, k: int = 5) -> list[tuple[int, float]]:
    """The k most likely next tokens with their probabilities (for the generation stepper)."""
    t = temperature if temperature > 0 else 1.0
    m = max(logits)
    exps = [math.exp((v - m) / t) for v in logits]
    z = sum(exps)
    best = sorted(range(len(logits)), key=logits.__getitem__, reverse=True)[:k]
    return [(i, exps[i] / z) for i in best]


async def generate_ids(
    backend: Backend,
    context: list[int],
    *,
    max_tokens: int,
    temperature: float,
    top_k: int,
    stop_ids: set[int],
    rand: random.Random,
) -> AsyncIterator[int]:
    """Yield new token ids one by one after feeding `context` (which must be non-empty)."""
    T = backend.model_cfg.block_size
    ids = list(context[-T:])
    await backend.decode_reset()
    logits = None
    for pos, tok in enumerate(ids):
        logits = await backend.decode(tok, pos)
    for _ in range(max_tokens):
        nxt = choose(logits, temperature, top_k, rand)
        if nxt in stop_ids:
            return
        yield nxt
        ids.append(nxt)
        if len(ids) > T:  # slide: rebuild the cache on the last T-1 tokens, then go on
            ids = ids[-(T - 1) :]
            await backend.decode_reset()
            for pos, tok in enumerate(ids):
                logits = await backend.decode(tok, pos)
        else:
            logits = await backend.decode(nxt, len(ids) - 1)


async def sample_texts(
    backend: Backend,
    tokenizer,
    *,
    prompt: str = "",
    n: int = 5,
    max_tokens: int = 64,
    temperature: float = 0.8,
    top_k: int = 0,
    seed: int = 0,
) -> list[str]:
    """n samples as text, each the prompt followed by its continuation."""
    rand = random.Random(seed)
    context = [tokenizer.bos] + tokenizer.encode(normalize(prompt))
    stop = {tokenizer.bos, tokenizer.eos}
    out = []
    for _ in range(n):
        new = [t async for t in generate_ids(
            backend, context, max_tokens=max_tokens, temperature=temperature, top_k=top_k,
            stop_ids=stop, rand=rand,
        )]
        out.append(tokenizer.decode(context[1:] + new))
    return out
