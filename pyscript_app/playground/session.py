"""One playground training run: the Trainer over a backend, with checkpoints and every step's loss.

    session = TrainingSession(settings, data, backend, store, key, meta={"backend": ...})
    await session.run(emit)                      # emit(event, progress) after each Trainer event
    await session.run(emit, resume=run_state)    # continue a checkpoint (run_state.read_checkpoint)
    session.stop()                               # the Stop button: ends after the current step

Checkpoints go to the store at the first read-back at or after every `checkpoint_every` steps and
when the run ends (done or stopped), so a reload resumes at the step the run stopped at.
Pure Python: the same class trains on the numpy backend in the unit tests.
"""

from __future__ import annotations

import time
from typing import Callable

from ..train.backend import Backend
from ..train.run_state import RunState, checkpoint_bytes
from ..train.sampler import sample_texts
from ..train.trainer import Trainer
from .progress import Progress
from .settings import Settings
from .store import CheckpointStore
from .textdata import DatasetTokens

HOST_SAMPLES = 200


class RecordingBackend:
    """Delegates to a Backend; keeps every loss pop_losses returns (the per-step loss log) and the
    seconds spent in step() (host: Python + encoding + submit; first_step_s of them in the first,
    which records the step and compiles what it needs) and waiting for read-backs (read_s: the GPU)."""

    def __init__(self, inner: Backend, sink: list[float], on_first_step: Callable[[], None] | None = None) -> None:
        self._inner, self._sink, self._on_first_step = inner, sink, on_first_step
        self._early: list[float] = []  # the first step's loss, read early, handed out with the next pop
        # step_ms: each step's host ms after the first (at most HOST_SAMPLES: the benchmark's median);
        # after_read_s: from each read-back's end to the next step's start (the Trainer's events and
        # what the page does with them: its updates, evaluations, checkpoints; then the next batch)
        self.timing = {"step_s": 0.0, "read_s": 0.0, "steps": 0, "first_step_s": 0.0, "step_ms": [],
                       "after_read_s": 0.0}
        self._read_end: float | None = None
        if hasattr(inner, "request_losses"):  # the Trainer then reads back without draining the GPU
            self.request_losses = self._request_losses

    async def step(self, x, y, lr) -> None:
        t0 = time.perf_counter()
        if self._read_end is not None:
            self.timing["after_read_s"] += t0 - self._read_end
            self._read_end = None
        await self._inner.step(x, y, lr)
        t1 = time.perf_counter()
        timing = self.timing
        timing["step_s"] += t1 - t0
        timing["steps"] += 1
        if 1 < timing["steps"] <= HOST_SAMPLES + 1:
            timing["step_ms"].append(round((t1 - t0) * 1e3, 4))
        if timing["steps"] == 1:
            timing["first_step_s"] = t1 - t0
            if self._on_first_step is not None:
                self._early += await self._inner.pop_losses()  # waits until the GPU has run the step
                timing["read_s"] += time.perf_counter() - t1
                self._on_first_step()

    def _request_losses(self):
        """The inner backend's request_losses (set as request_losses where it has one), recorded too."""
        early, self._early = self._early, []
        pending = self._inner.request_losses()

        async def losses() -> list[float]:
            t0 = time.perf_counter()
            got = early + await pending
            self._read_end = time.perf_counter()
            self.timing["read_s"] += self._read_end - t0
            self._sink.extend(got)
            return got

        return losses()

    async def pop_losses(self) -> list[float]:
        t0 = time.perf_counter()
        losses, self._early = self._early + await self._inner.pop_losses(), []
        self._read_end = time.perf_counter()
        self.timing["read_s"] += self._read_end - t0
        self._sink.extend(losses)
        return losses

    def __getattr__(self, name):
        return getattr(self._inner, name)


class TrainingSession:
    def __init__(self, settings: Settings, data: DatasetTokens, backend: Backend, store: CheckpointStore,
                 key: str, meta: dict | None = None) -> None:
        self.settings, self.data, self.backend, self.store, self.key = settings, data, backend, store, key
        self.cfg = settings.train_config()
        data.check_fits(self.cfg.seq_len)
        self.meta = {"source": "playground", "dataset": data.name, **(meta or {})}
        self.progress = Progress(self.cfg.steps)
        self.recorder = RecordingBackend(backend, self.progress.step_losses)
        self.trainer = Trainer(self.cfg, self.recorder, data.train, data.val, data.tokenizer,
                               sample_fn=self._samples if settings.samples else None)
        self.saved_step: int | None = None

    async def _samples(self, backend) -> list[str]:
        s = self.settings
        return await sample_texts(backend, self.data.tokenizer, prompt=s.prompt, n=s.samples,
                                  max_tokens=min(64, 2 * backend.model_cfg.block_size),
                                  temperature=s.temperature, top_k=s.top_k, seed=s.seed)

    def stop(self) -> None:
        self.trainer.stop()

    async def run(self, emit: Callable[[dict, Progress], None], resume: RunState | None = None,
                  on_first_step: Callable[[], None] | None = None) -> Progress:
        """Train (or continue `resume`); emit after every event; on_first_step once the GPU has
        finished the run's first step (for the time-to-first-step measurement)."""
        start = 0
        if resume is not None:
            resume.check_model(self.cfg.model_cfg(), self.cfg.model)
            await self.backend.load(resume.arrays["params"], resume.arrays.get("adam_m"),
                                    resume.arrays.get("adam_v"), resume.step)
            start = resume.step
        self.progress = p = Progress(self.cfg.steps, start_step=start)
        self.recorder = RecordingBackend(self.backend, p.step_losses, on_first_step)
        p.timing = self.recorder.timing
        self.trainer.backend = self.recorder
        self.saved_step = start if resume is not None else None
        every = self.settings.checkpoint_every
        self.trainer.settle_at = lambda step: step // every > (self.saved_step or 0) // every
        async for event in self.trainer.run(resume_step=start, fresh=resume is None):
            if event["type"] == "done":
                await self.recorder.pop_losses()  # a Stop can leave steps since the last read-back
            p.apply(event)
            if event["type"] == "step" and event["step"] // every > (self.saved_step or 0) // every:
                await self.save()
            if event["type"] == "done" and self.saved_step != event["step"]:
                await self.save()
            emit(event, p)
        return p

    async def checkpoint_blob(self) -> bytes:
        """The run as a resumable checkpoint in the CLI's format (`tabgpt sample` loads it)."""
        state = await self.backend.export()
        return checkpoint_bytes(self.cfg, self.data.tokenizer, state, self.meta)

    async def save(self) -> None:
        blob = await self.checkpoint_blob()
        step = self.trainer.step
        await self.store.save(self.key, blob, {
            "step": step, "steps": self.cfg.steps, "model": self.cfg.model, "dataset": self.data.name})
        self.saved_step = step
