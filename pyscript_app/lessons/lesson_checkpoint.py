"""The small trained model the attention and sampling lessons read: what it is and how to open it.

The site build trains it (site_src/hooks/lesson_models.py: the numpy reference, `nano` on names)
and ships it at MODEL_PATH; the pages fetch it and run it with tinyforward.TinyGPT in pure Python.
The training recipe lives here so the hook and the pages state the same numbers.

    cfg = lesson_train_config()                   # TrainConfig of the build's run
    lesson = open_lesson_model(blob)              # LessonModel: tiny (TinyGPT), tokenizer, step, val loss
    ids = lesson.context_ids("emma olivia")       # [BOS] emma [BOS] olivia, as the training stream
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..data.bpe import Tokenizer, normalize
from ..train.checkpoint import floats
from ..config import TrainConfig
from ..train.run_state import make_train_config, read_checkpoint
from .tinyforward import TinyGPT

MODEL_PATH = "py/models/names-nano.tgpt"  # under the site root
RECIPE = {"dataset": "names", "model": "nano", "steps": 400, "batch": 16, "lr": 1e-2, "seed": 1337,
          "eval_every": 100}
RECIPE_VERSION = 1  # bump to retrain cached models when the recipe's meaning changes


def lesson_train_config() -> TrainConfig:
    return make_train_config(**RECIPE)


def recipe_key(cfg: TrainConfig, tokenizer_sha256: str) -> str:
    """The build cache's key: the run's whole config, the tokenizer (the data) and the recipe version."""
    text = f"{RECIPE_VERSION}\n{cfg.to_json()}\n{tokenizer_sha256}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class LessonModel:
    tiny: TinyGPT
    tokenizer: Tokenizer
    step: int  # training steps the checkpoint took
    meta: dict  # what the build recorded: val_loss, train_loss, seconds, ...

    @property
    def cfg(self):
        return self.tiny.cfg

    def context_ids(self, text: str) -> list[int]:
        """Names separated by spaces or newlines -> [BOS] name [BOS] name ..., at most block_size ids
        (the names data set's training stream; a trailing space starts a new name: a lone BOS)."""
        text = normalize(text)
        names = text.split()
        ids: list[int] = []
        for name in names or [""]:
            ids.append(self.tokenizer.bos)
            ids.extend(self.tokenizer.encode(name))
        if names and text[-1:].isspace():
            ids.append(self.tokenizer.bos)
        return ids[:self.cfg.block_size]

    def token_label(self, token: int) -> str:
        return token_label(self.tokenizer, token)


def token_label(tokenizer: Tokenizer, token: int) -> str:
    """How a token is written on the page: BOS and EOS by name, others as their text."""
    if token == tokenizer.bos:
        return "⟨BOS⟩"
    if token == tokenizer.eos:
        return "⟨EOS⟩"
    return tokenizer.decode_bytes([token]).decode("utf-8", "replace")


def open_lesson_model(blob: bytes) -> LessonModel:
    """A checkpoint's bytes -> the model ready for tinyforward (CheckpointError when unreadable)."""
    run = read_checkpoint(blob)
    return LessonModel(TinyGPT(run.model_cfg, floats(run.arrays["params"])), run.tokenizer, run.step,
                       dict(run.header.get("meta") or {}))
