"""Which compute pipelines a training run will use, found without a GPU, so they can be compiled
all at once before the first step (Executor.compile_pipelines) instead of one by one as the first
step reaches each kernel.

    wanted = training_pipelines(model_cfg, train_cfg)     # [(kernel, overrides), ...]
    await ex.compile_pipelines(wanted)                     # the browser compiles them in parallel

How: the real GpuBackend records init, one training step and one evaluation into a PlanningExecutor,
whose primitives create nothing and whose reads return zeros; every pipeline it asked for is the
plan. So the plan cannot drift from what the trainer dispatches (same code, same tile choices).
Pure Python (runs in Pyodide and natively); a plan costs a few milliseconds of Python.
"""

from __future__ import annotations

from array import array
from typing import Any

from ..config import ModelConfig, TrainConfig
from ..gpu.executor import Executor, run_sync
from ..gpu.trainer_backend import GpuBackend

Wanted = list[tuple[str, dict[str, int | float]]]


class PlanningExecutor(Executor):
    """An executor that records which pipelines are asked for and creates nothing."""

    engine = "planning"

    def __init__(self) -> None:
        super().__init__()
        self.wanted: Wanted = []

    def _create_pipeline(self, module, entry, layout, constants, label):
        self.wanted.append((label, dict(constants)))
        return ("pipeline", label, tuple(sorted(constants.items())))

    def _create_shader_module(self, code, label):
        return ("module", label)  # the .wgsl text is not read

    def _pipeline_request(self, k, consts):
        return None, k.entry, None, consts, k.name

    async def _read_buffer(self, handle, offset, nbytes) -> bytes:
        return bytes(nbytes)

    def _noop(self, *args: Any) -> Any:
        return None

    _create_buffer = _write_buffer = _create_bind_group_layout = _create_pipeline_layout = _noop
    _create_bind_group = _begin_encoder = _begin_pass = _set_pipeline = _dispatch = _noop
    _end_compute_pass = _copy = _clear = _submit = _noop


def training_pipelines(model_cfg: ModelConfig, train_cfg: TrainConfig) -> Wanted:
    """(kernel, resolved overrides) of every pipeline that init + a training step + an evaluation
    of this run dispatch, in first-use order. Sampling's decode kernels are not included."""
    ex = PlanningExecutor()
    backend = GpuBackend(model_cfg, train_cfg, ex)
    n = backend.B * backend.T
    zeros = array("H", bytes(2 * n))  # (B*T,) token 0: any tokens dispatch the same kernels
    run_sync(backend.init(train_cfg.seed))
    run_sync(backend.step(zeros, zeros, train_cfg.lr))
    run_sync(backend.pop_losses())
    run_sync(backend.evaluate(zeros, zeros, backend.B))
    return ex.wanted
