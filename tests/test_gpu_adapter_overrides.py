"""registry.ADAPTER_OVERRIDES and Executor.override_table: per-adapter override values replace the
callers' in every dispatch and pipeline, and a run with a table trains the same model (the tuned
kernels compute the same sums in another order). Every host takes the table of its adapter's
architecture (gpu/adapter_inputs.py)."""

from __future__ import annotations

import asyncio
from array import array

import numpy as np
import pytest

from _gpu import gpu  # noqa: F401
from pyscript_app.config import ModelConfig, TrainConfig
from pyscript_app.gpu import matmul_rules, registry
from pyscript_app.gpu.executor import run_sync
from pyscript_app.gpu.trainer_backend import GpuBackend
from pyscript_app.playground.pipeline_plan import PlanningExecutor, training_pipelines

REDUCTIONS_NEED_POWER_OF_TWO = ("rmsnorm", "crossentropy", "mean_into_slot", "grad_norm")


def world():
    mc = ModelConfig(n_layer=2, n_embd=16, n_head=4, block_size=8, vocab_size=60)
    return mc, TrainConfig(model="custom", model_config=mc.to_dict(), vocab_size=60, batch=3, block_size=6,
                           log_every=4)


@pytest.mark.parametrize("adapter", sorted(registry.ADAPTER_OVERRIDES))
def test_every_table_entry_is_a_valid_override_of_a_registered_kernel(adapter):
    for kernel, values in registry.ADAPTER_OVERRIDES[adapter].items():
        registry.get(kernel).resolve_overrides(values)  # KeyError on an unknown kernel or override
        if "TM" in values:
            assert values["TM"] in matmul_rules.MATMUL_TILE_SIZES and values["TN"] in matmul_rules.MATMUL_TILE_SIZES
        if "WG" in values and kernel.startswith(REDUCTIONS_NEED_POWER_OF_TWO):
            assert values["WG"] & (values["WG"] - 1) == 0, (kernel, values)


@pytest.mark.parametrize("adapter", sorted(registry.ADAPTER_KERNELS))
def test_every_substitute_kernel_has_the_replaced_kernels_interface(adapter):
    for kernel, other in registry.ADAPTER_KERNELS[adapter].items():
        a, b = registry.get(kernel), registry.get(other)
        assert (a.bindings, a.uniform) == (b.bindings, b.uniform), (kernel, other)


def test_a_substituted_kernel_is_dispatched_and_compiled_with_its_own_defaults():
    mc, tc = world()
    plain = training_pipelines(mc, tc)
    table = registry.ADAPTER_KERNELS["swiftshader"]
    ex = PlanningExecutor()
    ex.kernel_table = table
    run_sync(ex.compile_pipelines(plain))
    kernels = {k for k, _ in ex.wanted}
    replaced = {k for k, _ in plain} & table.keys()
    assert replaced and not kernels & replaced
    assert {table[k] for k in replaced} <= kernels
    assert all(values == {"WG": 64} for k, values in ex.wanted if k.endswith("_direct"))
    backend = GpuBackend(mc, tc, ex)  # a whole step dispatches the substitutes, compiles nothing else
    tokens = array("H", bytes(2 * backend.B * backend.T))
    run_sync(backend.init(1))
    run_sync(backend.step(tokens, tokens, 1e-3))
    assert {k for k, _ in ex.wanted} == kernels


def test_the_table_is_chosen_by_architecture_and_other_adapters_get_none():
    assert registry.adapter_overrides({"vendor": "google", "architecture": "swiftshader"}) \
        == registry.ADAPTER_OVERRIDES["swiftshader"]
    assert registry.adapter_overrides({"vendor": "nvidia", "architecture": "hopper"}) == {}
    assert registry.adapter_overrides({}) == {}


def test_the_table_replaces_the_callers_overrides_in_dispatches_and_compiled_plans():
    mc, tc = world()
    plain = training_pipelines(mc, tc)
    row_kernel = next(k for k, o in plain if k.startswith("crossentropy") and o["WG"] != 16)
    tile_kernel = next(k for k, o in plain if o.get("TM") == 64)
    table = {row_kernel: {"WG": 16}, tile_kernel: {"TM": 32, "TN": 32}}
    ex = PlanningExecutor()
    ex.override_table = table
    assert run_sync(ex.compile_pipelines(plain)) == len(plain)
    compiled = dict.fromkeys(k for k, _ in ex.wanted)
    assert len(compiled) == len({k for k, _ in plain})
    for kernel, values in ex.wanted:
        for name, value in table.get(kernel, {}).items():
            assert values[name] == value, (kernel, values)
    assert {row_kernel, tile_kernel} <= compiled.keys()
    backend = GpuBackend(mc, tc, ex)  # then a whole step creates no other pipeline
    tokens = array("H", bytes(2 * backend.B * backend.T))
    run_sync(backend.init(1))
    run_sync(backend.step(tokens, tokens, 1e-3))
    assert len(ex.wanted) == len(plain)


@pytest.mark.gpu
@pytest.mark.parametrize("adapter", sorted(registry.ADAPTER_OVERRIDES))
def test_a_run_with_an_adapters_table_gives_the_same_losses_as_without(gpu, adapter):
    own = gpu.override_table, gpu.kernel_table  # the tables of the test adapter's architecture
    mc, tc = world()
    rng = np.random.default_rng(5)
    batches = [array("H", rng.integers(0, tc.vocab_size, size=tc.batch * (tc.seq_len + 1)).astype(np.uint16)
                     .tobytes()) for _ in range(4)]

    def losses() -> list[float]:
        backend = GpuBackend(mc, tc, gpu)
        asyncio.run(backend.init(11))
        for b in batches:  # rows of T+1 tokens: x is the first T, y the last T of each row
            rows = np.frombuffer(b, np.uint16).reshape(tc.batch, tc.seq_len + 1)
            asyncio.run(backend.step(array("H", rows[:, :-1].tobytes()), array("H", rows[:, 1:].tobytes()), 3e-3))
        out = asyncio.run(backend.pop_losses())
        x = array("H", np.frombuffer(batches[0], np.uint16).reshape(tc.batch, -1)[:, :-1].tobytes())
        return out + [asyncio.run(backend.evaluate(x, x, tc.batch))]

    try:
        gpu.override_table, gpu.kernel_table = {}, {}
        default = losses()
        gpu.override_table = registry.ADAPTER_OVERRIDES[adapter]
        gpu.kernel_table = registry.ADAPTER_KERNELS.get(adapter, {})
        tuned = losses()
    finally:
        gpu.override_table, gpu.kernel_table = own
    assert tuned == pytest.approx(default, rel=1e-5)
    assert default[3] < default[0]  # it trained: not a comparison of constants
