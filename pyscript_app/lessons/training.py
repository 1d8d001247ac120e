"""The training lesson: train a small model step by step and look inside one training position.

    cfg = lesson_config(total_steps=300)
    run = SteppedRun(cfg, backend, tokenizer, train_tokens, val_tokens)   # any Backend
    await run.start()                        # the counter-based init (same weights on every host)
    x, y = run.next_window()                 # row 0 of the batch the next step trains on (T,) each
    await run.step()                         # one AdamW step at lr_at(step); returns its loss
    view = position_view(TinyGPT(cfg.model_cfg(), params), x, y, pos)  # context, target, predictions

Batches are the Trainer's (rng.batch_starts: the CLI draws the same ones with the same seed) and the
learning rate is schedule.lr_at, so this page trains exactly as `tabgpt train` does, one step at a
time. Pure Python: runs in the page and in the unit tests (on the numpy backend).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..train.backend import Backend
from ..config import TrainConfig
from ..train.run_state import make_train_config
from ..train.sampler import top_candidates
from ..train.schedule import lr_at
from ..train.trainer import Trainer
from .tinyforward import TinyGPT

LESSON_RUN = {"dataset": "names", "model": "nano", "batch": 8, "lr": 1e-2, "seed": 1337}
HEATMAP_TENSORS = ("wpe", "h0.qkv", "h0.proj", "h0.fc", "h0.fc_proj")  # small enough to draw whole


def lesson_config(total_steps: int) -> TrainConfig:
    """The page's run: nano on names; warmup and decay follow the CLI's rules for total_steps."""
    return make_train_config(steps=total_steps, eval_every=total_steps, log_every=10, **LESSON_RUN)


def uniform_loss(vocab_size: int) -> float:
    """The loss of a model that gives every token the same probability 1/V: ln V nats."""
    return math.log(vocab_size)


def lr_points(cfg: TrainConfig) -> list[tuple[int, float]]:
    """(step, learning rate) at every step of the run: schedule.lr_at, as the Trainer calls it."""
    return [(s, lr_at(s, cfg.steps, cfg.lr, cfg.warmup_steps, cfg.decay_start_frac, cfg.min_lr_frac))
            for s in range(cfg.steps)]


class SteppedRun:
    """A training run driven one step at a time (the Trainer's batches, evaluation and schedule)."""

    def __init__(self, cfg: TrainConfig, backend: Backend, tokenizer, train_tokens, val_tokens) -> None:
        self.cfg = cfg
        self.backend = backend
        self.trainer = Trainer(cfg, backend, train_tokens, val_tokens, tokenizer)
        self.steps_done = 0
        self.losses: list[tuple[int, float]] = []  # (step number after the step, its training loss)
        self.val_losses: list[tuple[int, float]] = []

    async def start(self) -> None:
        await self.backend.init(self.cfg.seed)
        await self.backend.pop_losses()
        self.steps_done, self.losses, self.val_losses = 0, [], []

    @property
    def finished(self) -> bool:
        return self.steps_done >= self.cfg.steps

    def lr(self) -> float:
        c = self.cfg
        return lr_at(min(self.steps_done, c.steps - 1), c.steps, c.lr, c.warmup_steps, c.decay_start_frac,
                     c.min_lr_frac)

    def next_window(self, row: int = 0) -> tuple[list[int], list[int]]:
        """Inputs and targets (T,) of one row of the batch the next step trains on."""
        x, y = self.trainer.batch(self.steps_done)
        T = self.trainer.T
        return list(x[row * T:(row + 1) * T]), list(y[row * T:(row + 1) * T])

    async def step(self, read_loss: bool = True) -> float | None:
        """One AdamW step. read_loss=False leaves the loss on the device (read later by read_losses)."""
        if self.finished:
            raise ValueError(f"the run has done all its {self.cfg.steps} steps")
        x, y = self.trainer.batch(self.steps_done)
        await self.backend.step(x, y, self.lr())
        self.steps_done += 1
        if read_loss:
            return (await self.read_losses())[-1]
        return None

    async def read_losses(self) -> list[float]:
        """The losses of the steps since the last read (one readback for all of them)."""
        losses = await self.backend.pop_losses()
        first = self.steps_done - len(losses) + 1
        self.losses += [(first + i, loss) for i, loss in enumerate(losses)]
        return losses

    async def evaluate(self) -> float:
        """Loss on the fixed validation slice (nats per token)."""
        val, _ = await self.trainer.evaluate()
        self.val_losses.append((self.steps_done, val))
        return val


@dataclass
class PositionView:
    """One training position: what the model reads, what it should predict, what it predicts."""

    pos: int
    context: list[int]  # the inputs 0..pos the prediction may use (T' <= T)
    target: int  # the token at pos + 1, the label of this position
    top: list[tuple[int, float]]  # the model's k most likely next tokens with their probabilities
    target_prob: float  # the probability the model gives the target

    @property
    def loss(self) -> float:
        """This position's cross-entropy: -ln p(target) nats."""
        return -math.log(max(self.target_prob, 1e-30))


def position_views(tiny: TinyGPT, x: list[int], y: list[int], k: int = 5) -> list[PositionView]:
    """Every position of one training row at once (one forward pass with the LM head at every position)."""
    out = tiny.forward(x, all_logits=True)
    views = []
    for pos, logits in enumerate(out.logits):
        probs = top_candidates(logits, 1.0, len(logits))  # sorted, all V: the target's share is in there
        target_prob = next(p for i, p in probs if i == y[pos])
        views.append(PositionView(pos, x[:pos + 1], y[pos], probs[:k], target_prob))
    return views


def tensor_rows(values, shape: tuple[int, ...]) -> list[list[float]]:
    """A flat tensor as rows for a heat map: (rows, cols) as is, a vector (C,) as one row."""
    cols = shape[-1]
    rows = 1 if len(shape) == 1 else shape[0]
    if len(values) != rows * cols:
        raise ValueError(f"{len(values)} values for shape {shape}")
    return [[float(v) for v in values[r * cols:(r + 1) * cols]] for r in range(rows)]
