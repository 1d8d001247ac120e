"""playground/pipeline_plan.py and Executor.compile_pipelines: the plan of a run names exactly the
pipelines the GPU backend then dispatches, so compiling it first leaves nothing for the first step
to compile. The plan itself needs no GPU; the last test checks it against a real native executor."""

from __future__ import annotations

import asyncio
from array import array

import numpy as np
import pytest

from _gpu import gpu  # noqa: F401
from pyscript_app.config import ModelConfig, TrainConfig
from pyscript_app.gpu.executor import run_sync
from pyscript_app.gpu import matmul_rules, registry
from pyscript_app.gpu.matmul_rules import matmul_backward_tiles, matmul_forward_tiles
from pyscript_app.gpu.trainer_backend import GpuBackend
from pyscript_app.playground.pipeline_plan import PlanningExecutor, training_pipelines


def world(n_layer: int = 2, n_embd: int = 16, batch: int = 3, block: int = 8, vocab: int = 50):
    mc = ModelConfig(n_layer=n_layer, n_embd=n_embd, n_head=4, block_size=block, vocab_size=vocab)
    return mc, TrainConfig(model="custom", model_config=mc.to_dict(), vocab_size=vocab, batch=batch,
                           block_size=block - 2, log_every=4)


def keys(wanted) -> list[tuple]:
    return [(kernel, tuple(sorted(o.items()))) for kernel, o in wanted]


class DispatchLog(PlanningExecutor):
    """Also remembers every dispatch's kernel and overrides (as the caller passed them)."""

    def __init__(self) -> None:
        super().__init__()
        self.dispatched: list[tuple[str, dict]] = []

    def dispatch(self, kernel, buffers, params, *, overrides=None, shape=None):
        self.dispatched.append((kernel, dict(overrides or {})))
        super().dispatch(kernel, buffers, params, overrides=overrides, shape=shape)


def test_the_plan_lists_each_pipeline_of_init_a_step_and_an_evaluation_once():
    mc, tc = world()
    wanted = training_pipelines(mc, tc)
    assert len(set(keys(wanted))) == len(wanted)
    assert [k for k, _ in wanted[:2]] == ["init_normal", "fill"]  # init dispatches first
    ex = DispatchLog()
    backend = GpuBackend(mc, tc, ex)
    tokens = array("H", bytes(2 * backend.B * backend.T))
    run_sync(backend.init(tc.seed))
    run_sync(backend.step(tokens, tokens, 1e-3))
    run_sync(backend.step(tokens, tokens, 1e-3))  # a second step may replay the first one's plan
    run_sync(backend.evaluate(tokens, tokens, backend.B))
    resolved = {(k, tuple(sorted(registry.get(k).resolve_overrides(o).items()))) for k, o in ex.dispatched}
    assert resolved == set(keys(wanted))
    assert any(k.startswith("crossentropy") for k, _ in wanted) and any(k == "adamw_step" for k, _ in wanted)


def test_the_plan_has_the_tiles_each_matmul_shape_picks():
    mc, tc = world(n_embd=32, batch=4, vocab=300)
    wanted = training_pipelines(mc, tc)
    N, C, V = tc.batch * tc.seq_len, mc.n_embd, mc.vocab_size
    matmuls = [(k, o) for k, o in wanted if k.startswith("matmul")]
    assert matmuls and all(o["TM"] in matmul_rules.MATMUL_TILE_SIZES for _, o in matmuls)
    head_forward, head_backward = matmul_forward_tiles(N, C, V), matmul_backward_tiles(N, C, V)  # lm_head
    assert any(k.startswith("matmul_forward") and o.items() >= head_forward.items() for k, o in matmuls)
    assert any(k.startswith("matmul_backward") and o.items() >= head_backward.items() for k, o in matmuls)


def test_a_bigger_model_plans_the_same_kernels_but_no_more_than_its_shapes_need():
    small, large = world(n_layer=1), world(n_layer=4, n_embd=64)
    assert {k for k, _ in training_pipelines(*small)} == {k for k, _ in training_pipelines(*large)}
    assert len(training_pipelines(*large)) >= len(training_pipelines(*small))


def test_compile_pipelines_creates_only_what_is_missing_then_dispatch_creates_nothing():
    mc, tc = world()
    wanted = training_pipelines(mc, tc)
    ex = PlanningExecutor()
    assert run_sync(ex.compile_pipelines(wanted + wanted[:3])) == len(wanted)  # duplicates once
    assert ex.stats["pipelines"] == len(wanted)
    assert run_sync(ex.compile_pipelines(wanted)) == 0
    backend = GpuBackend(mc, tc, ex)
    run_sync(backend.init(tc.seed))
    tokens = array("H", bytes(2 * backend.B * backend.T))
    run_sync(backend.step(tokens, tokens, 1e-3))
    run_sync(backend.evaluate(tokens, tokens, backend.B))
    assert ex.stats["pipelines"] == len(wanted) and ex.stats["dispatches"] > len(wanted)


@pytest.mark.gpu
def test_on_a_real_device_the_compiled_plan_covers_a_whole_run(gpu):
    mc, tc = world(n_layer=1, batch=2, vocab=40)
    wanted = training_pipelines(mc, tc)
    asyncio.run(gpu.compile_pipelines(wanted))
    made = gpu.stats["pipelines"]
    assert all(run_sync(gpu.compile_pipelines([w])) == 0 for w in wanted)  # all cached now
    backend = GpuBackend(mc, tc, gpu)
    rng = np.random.default_rng(0)
    toks = rng.integers(0, tc.vocab_size, size=(tc.batch, tc.seq_len)).astype(np.uint16)
    x = array("H", toks.tobytes())
    asyncio.run(backend.init(3))
    for _ in range(2):
        asyncio.run(backend.step(x, x, 1e-3))
    losses = asyncio.run(backend.pop_losses())
    asyncio.run(backend.evaluate(x, x, tc.batch))
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert gpu.stats["pipelines"] == made, "the first steps compiled a pipeline the plan missed"
