"""The training loop, the same for every backend and both hosts (pure Python, async).

    trainer = Trainer(train_cfg, backend, train_tokens, val_tokens, tokenizer)
    async for event in trainer.run():
        ...   # {"type": "init" | "step" | "eval" | "samples" | "done", ...}

Batches: step s draws B windows of T+1 tokens from train at starts rng.batch_starts(seed, s, ...)
(counter-based, so the browser and a native worker draw the same batches from the same seed, and
a resumed run continues the same stream). Every start in [0, n - T - 1] is reachable.

Evaluation: a fixed, deterministic slice of val — eval_batches * batch windows of T+1 tokens at
evenly spaced starts (the first at 0, the last ending at the end of val). With the defaults
(8 * 8 windows) that is 64*T predicted tokens. val_nats_per_byte = val_loss * tokens / bytes, where
bytes counts the UTF-8 bytes the target tokens stand for (a special token counts as one byte: the
newline it replaces).

The loss is read back from the backend only every `log_every` steps (pop_losses returns the losses
of all steps since the last read) and at evaluation. A backend with request_losses (the GPU's) is
read one step later: its event comes once the next step is submitted (see run).
"""

from __future__ import annotations

import time
from array import array
from typing import AsyncIterator, Callable

from .. import rng
from .backend import Backend
from ..config import TrainConfig
from .schedule import lr_at


def make_windows(tokens: array, starts: list[int], T: int) -> tuple[array, array]:
    """Inputs and targets for windows at `starts`: two array('H') of len(starts)*T, rows (B,T)."""
    x, y = array("H"), array("H")
    for s in starts:
        x.extend(tokens[s : s + T])
        y.extend(tokens[s + 1 : s + T + 1])
    return x, y


def eval_starts(n_tokens: int, T: int, count: int) -> list[int]:
    """`count` evenly spaced window starts covering val from 0 to n_tokens - T - 1."""
    last = n_tokens - T - 1
    if last < 0:
        raise ValueError(f"validation split has {n_tokens} tokens, fewer than a window of {T + 1}")
    if count == 1 or last == 0:
        return [0] * count
    return [i * last // (count - 1) for i in range(count)]


class Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        backend: Backend,
        train_tokens: array,
        val_tokens: array,
        tokenizer,
        *,
        sample_fn: Callable | None = None,
    ):
        self.cfg = cfg.validate()
        self.backend = backend
        self.train_tokens = train_tokens
        self.val_tokens = val_tokens
        self.tokenizer = tokenizer
        self.sample_fn = sample_fn  # async (backend) -> list[str], called at the end
        self.T = cfg.seq_len
        self.step = 0  # number of completed steps
        # step -> whether the consumer needs the backend exactly at that step when its event comes
        # (a checkpoint): the read-back there is not deferred past the next step (see run)
        self.settle_at: Callable[[int], bool] | None = None
        self.stop_requested = False
        self._eval_x, self._eval_y = make_windows(
            val_tokens, eval_starts(len(val_tokens), self.T, cfg.eval_batches * cfg.batch), self.T
        )
        # bytes per target token of the fixed val slice, for nats/byte
        self._eval_bytes = tokenizer.bytes_of_tokens(list(self._eval_y))
        rng.batch_starts(cfg.seed, 0, 1, len(train_tokens), self.T)  # raises if train is too short

    def batch(self, step: int) -> tuple[array, array]:
        starts = rng.batch_starts(self.cfg.seed, step, self.cfg.batch, len(self.train_tokens), self.T)
        return make_windows(self.train_tokens, starts, self.T)

    async def evaluate(self) -> tuple[float, float]:
        """(val loss in nats/token, val nats/byte) on the fixed val slice."""
        loss = await self.backend.evaluate(self._eval_x, self._eval_y, self.cfg.batch)
        return loss, loss * len(self._eval_y) / max(1, self._eval_bytes)

    def stop(self) -> None:
        """Ask the loop to stop after the current step (the browser's Stop button)."""
        self.stop_requested = True

    @staticmethod
    def _step_event(step: int, losses: list[float], lr: float, train_steps: int, train_s: float,
                    tokens_done: int, t0: float) -> dict:
        return {
            "type": "step",
            "step": step,
            "loss": losses[-1] if losses else float("nan"),
            "lr": lr,
            "tokens_per_s": tokens_done / max(train_s, 1e-9),
            "train_s": train_s,  # the time of this run's first train_steps steps (the page's ms/step)
            "train_steps": train_steps,
            "elapsed_s": time.perf_counter() - t0,
        }

    async def run(self, *, resume_step: int = 0, fresh: bool = True) -> AsyncIterator[dict]:
        cfg, be = self.cfg, self.backend
        if fresh:
            await be.init(cfg.seed)
        self.step = resume_step
        mc = be.model_cfg
        yield {
            "type": "init",
            "config": cfg.to_json(),
            "param_count": mc.param_count,
            "backend": be.describe(),
            "step": self.step,
            "eval_tokens": len(self._eval_y),
        }
        # elapsed_s: wall time since the loop began (what the ETA extrapolates). tokens_per_s: training
        # throughput, tokens over the time spent in training steps and their loss read-backs only:
        # evaluations and whatever the consumer does between events (checkpoints, the page) excluded.
        t0 = time.perf_counter()
        train_s = 0.0
        tokens_done, window_losses = 0, []
        tokens_per_step = cfg.batch * self.T
        # A backend with request_losses (GpuBackend) reads the losses back without draining the GPU:
        # the read is requested after step s, step s+1 is submitted, and only then is it awaited and
        # step s's event yielded, so the GPU runs s+1 while the consumer handles the event. Before an
        # evaluation, at the last step and where settle_at(s) (the consumer takes a checkpoint at the
        # event of step s) the read-back is awaited at once, as pop_losses.
        request = getattr(be, "request_losses", None)
        deferred = None  # (step, lr, awaitable losses) of a read-back whose event waits for the next step
        while self.step < cfg.steps and not self.stop_requested:
            began = time.perf_counter()
            lr = lr_at(self.step, cfg.steps, cfg.lr, cfg.warmup_steps, cfg.decay_start_frac, cfg.min_lr_frac)
            x, y = self.batch(self.step)
            await be.step(x, y, lr)
            self.step += 1
            tokens_done += tokens_per_step
            if deferred is not None:
                step, step_lr, pending = deferred
                deferred = None
                losses = await pending
                train_s += time.perf_counter() - began
                window_losses += losses
                yield self._step_event(step, losses, step_lr, tokens_done // tokens_per_step, train_s,
                                       tokens_done, t0)
                began = time.perf_counter()
            last = self.step == cfg.steps
            evaluating = self.step % cfg.eval_every == 0 or last
            read_back = self.step % cfg.log_every == 0 or evaluating
            if read_back and request is not None and not evaluating and not (
                    self.settle_at is not None and self.settle_at(self.step)):
                deferred = (self.step, lr, request())
                train_s += time.perf_counter() - began
                continue
            losses = await be.pop_losses() if read_back else []
            train_s += time.perf_counter() - began
            if read_back:
                window_losses += losses
                yield self._step_event(self.step, losses, lr, tokens_done // tokens_per_step, train_s,
                                       tokens_done, t0)
            if evaluating:
                val_loss, val_npb = await self.evaluate()
                yield {
                    "type": "eval",
                    "step": self.step,
                    "train_loss": sum(window_losses) / len(window_losses) if window_losses else float("nan"),
                    "val_loss": val_loss,
                    "val_nats_per_byte": val_npb,
                    "tokens_per_s": tokens_done / max(train_s, 1e-9),
                    "elapsed_s": time.perf_counter() - t0,
                }
                window_losses = []
        if deferred is not None:  # stopped after a read-back was requested: its event still comes
            losses = await deferred[2]
            yield self._step_event(deferred[0], losses, deferred[1], tokens_done // tokens_per_step, train_s,
                                   tokens_done, t0)
        if self.sample_fn is not None:
            yield {"type": "samples", "step": self.step, "samples": await self.sample_fn(be)}
        yield {
            "type": "done",
            "step": self.step,
            "stopped": self.stop_requested,
            "elapsed_s": time.perf_counter() - t0,
        }
