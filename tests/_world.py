"""Tiny seeded worlds shared by the trainer, sampler and CLI tests (no downloads, small shapes)."""

from __future__ import annotations

import random
from array import array

from pyscript_app.data.bpe import Tokenizer
from pyscript_app.config import ModelConfig, TrainConfig

SYLLABLES = ["ka", "ri", "mo", "an", "el", "la", "to", "ne", "sa", "vi", "or", "u"]


def name_lines(n: int = 400, seed: int = 0) -> list[str]:
    r = random.Random(seed)
    return ["".join(r.choice(SYLLABLES) for _ in range(r.randint(2, 4))) for _ in range(n)]


def tiny_world(vocab: int = 300, seed: int = 0):
    """(tokenizer, train tokens, val tokens) over generated names; vocab small so models stay tiny."""
    lines = name_lines(seed=seed)
    tok = Tokenizer.train(lines[:360], vocab)
    train = array("H", tok.encode_docs(lines[:360]))
    val = array("H", tok.encode_docs(lines[360:]))
    return tok, train, val


def tiny_train_config(vocab: int = 300, **kw) -> TrainConfig:
    mc = ModelConfig(n_layer=1, n_embd=16, n_head=2, block_size=8, vocab_size=vocab)
    base = dict(model="custom", steps=20, batch=4, eval_every=10, eval_batches=2, log_every=5,
                warmup_steps=2, model_config=mc.to_dict(), vocab_size=vocab, seed=3)
    base.update(kw)
    return TrainConfig(**base)
