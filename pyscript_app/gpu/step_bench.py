"""Training-step timings on any executor (native or the browser's): no numpy, async throughout.

time_step:    forward + backward + clip + AdamW of one preset (full context), `repeats` steps submitted
              back to back and one readback, median over `runs`: ms per step, tokens/s and
              dispatches per step. The native `tabgpt bench` and the bench page both report it.
profile_step: where one step's time goes: each command of the recorded step (GpuBackend's plan)
              replayed alone `reps` times in one submission and timed to the readback, summed per
              kernel and tile. Isolated timings miss overlap and cache effects, so their sum differs
              from the step's own time by a few percent on a GPU (an H200: 33.4 vs 32.3 ms for
              `large`); the whole step is timed the same way for comparison.
Times are wall clock from the host (time.perf_counter), which includes recording from Python and
the wait for the GPU: what a training loop pays.
"""

from __future__ import annotations

import time
from array import array
from dataclasses import asdict, dataclass
from statistics import median

from ..config import TrainConfig, preset
from .executor import Executor, Plan
from .trainer_backend import GpuBackend


@dataclass(frozen=True)
class StepTiming:
    model: str
    batch: int
    tokens_per_step: int  # batch * context
    dispatches_per_step: int
    ms_per_step: float  # median over runs of (repeats steps, one readback) / repeats
    runs_ms: tuple[float, ...]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / (self.ms_per_step / 1e3)

    def to_json(self) -> dict:
        return {**asdict(self), "runs_ms": list(self.runs_ms), "tokens_per_s": self.tokens_per_s}


@dataclass(frozen=True)
class DispatchShare:
    label: str  # kernel name, with " TMxTN" for the matmul tiles, or "copy" / "clear"
    count: int  # commands of this label in one step
    ms: float  # their isolated time per step, summed

    def to_json(self) -> dict:
        return asdict(self)


def random_tokens(n: int, vocab: int, seed: int) -> array:
    """n token ids in [0, vocab) as uint16 from a 64-bit LCG (no numpy in the browser); the same
    tokens for the same arguments everywhere."""
    state = (seed * 0x9E3779B97F4A7C15 + 1) & 0xFFFFFFFFFFFFFFFF
    out = array("H", bytes(2 * n))
    for i in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out[i] = (state >> 33) % vocab
    return out


async def make_backend(ex: Executor, model: str, batch: int, seed: int = 1,
                       precision: str = "fp32") -> tuple[GpuBackend, array, array]:
    """A GpuBackend of `model` at full context, initialised, with one random batch (x, y) that has
    been stepped once (the first step records the plan and compiles its pipelines)."""
    cfg = preset(model)
    be = GpuBackend(cfg, TrainConfig(model=model, batch=batch, log_every=1_000_000, precision=precision), ex)
    await be.init(seed)
    n = batch * be.T
    tokens = random_tokens(n + 1, cfg.vocab_size, seed)
    x, y = tokens[:n], tokens[1:]
    await be.step(x, y, 1e-3)
    await be.pop_losses()
    return be, x, y


async def time_step(ex: Executor, model: str, batch: int = 8, repeats: int = 5, runs: int = 3,
                    precision: str = "fp32") -> StepTiming:
    be, x, y = await make_backend(ex, model, batch, precision=precision)
    before = ex.stats["dispatches"]
    await be.step(x, y, 1e-3)
    await be.pop_losses()
    dispatches = ex.stats["dispatches"] - before
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(repeats):
            await be.step(x, y, 1e-3)
        await be.pop_losses()  # the one readback waits for every submitted step
        times.append((time.perf_counter() - t0) * 1e3 / repeats)
    return StepTiming(model, batch, batch * be.T, dispatches, median(times), tuple(times))


def _labels(ex: Executor) -> dict:
    """pipeline object -> "kernel" or "kernel TMxTN" (the tile is what distinguishes matmul pipelines)."""
    out = {}
    for (kernel, consts), pipeline in ex._pipelines.items():
        c = dict(consts)
        out[id(pipeline)] = f"{kernel} {c['TM']}x{c['TN']}" if "TM" in c else kernel
    return out


async def _time_plan(ex: Executor, plan: Plan, reps: int, probe) -> float:
    """ms per replay of `plan`: reps replays in one submission, then a small readback."""
    ex.replay(plan)
    ex.submit()
    await ex.read(probe, 4)
    t0 = time.perf_counter()
    for _ in range(reps):
        ex.replay(plan)
    ex.submit()
    await ex.read(probe, 4)
    return (time.perf_counter() - t0) * 1e3 / reps


async def profile_step(ex: Executor, be: GpuBackend, reps: int = 10) -> tuple[list[DispatchShare], float]:
    """([per-label isolated time per step, largest first], the whole step's ms timed the same way).
    `be` must have stepped once (make_backend does)."""
    plan = be._step_plan
    labels = _labels(ex)
    totals: dict[str, list] = {}
    for item in plan.items:
        label = labels.get(id(item[1]), "dispatch") if item[0] == "dispatch" else item[0]
        ms = await _time_plan(ex, Plan((item,)), reps, be.params)
        entry = totals.setdefault(label, [0, 0.0])
        entry[0] += 1
        entry[1] += ms
    whole = await _time_plan(ex, plan, reps, be.params)
    shares = [DispatchShare(k, c, ms) for k, (c, ms) in totals.items()]
    return sorted(shares, key=lambda s: -s.ms), whole
