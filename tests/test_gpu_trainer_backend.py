"""gpu/trainer_backend.py: the GPU backend against the numpy backend (init, evaluate, checkpoints,
decode), its submission and readback discipline, and an overfit gate.

Tolerances: init bit for bit; losses relative 1e-5 (f32 sums in another order); decode logits
atol 1e-4 (the issue's gate); params after a step atol 1e-5."""

import asyncio
from array import array

import numpy as np
import pytest

from _gpu import gpu  # noqa: F401
from pyscript_app.config import ModelConfig, TrainConfig
from pyscript_app.gpu.trainer_backend import GpuBackend, open_gpu_backend, tokens_to_u32
from pyscript_app.train.numpy_backend import NumpyBackend
from pyscript_app.reference.init import init_params

pytestmark = pytest.mark.gpu
OBJECTS = ("buffers", "shader_modules", "pipelines", "bind_groups", "uniform_buffers")


def run(coro):
    return asyncio.run(coro)


def small_world(**train_kw):
    """A 2-layer model with a short window (T=6 < block_size 8) and random-token batches."""
    mc = ModelConfig(n_layer=2, n_embd=16, n_head=4, block_size=8, vocab_size=50)
    kw = dict(model="custom", model_config=mc.to_dict(), vocab_size=50, batch=3, block_size=6, log_every=4)
    kw.update(train_kw)
    return mc, TrainConfig(**kw)


def batches(tc: TrainConfig, count: int, seed: int = 0, rows: int | None = None):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        toks = rng.integers(0, tc.vocab_size, size=(rows or tc.batch, tc.seq_len + 1)).astype(np.uint16)
        out.append((array("H", toks[:, :-1].tobytes()), array("H", toks[:, 1:].tobytes())))
    return out


def random_params(mc: ModelConfig, seed: int) -> bytes:
    """Weights with every branch active (init leaves proj and fc_proj at zero)."""
    return (np.random.default_rng(seed).standard_normal(mc.param_count) * 0.2).astype(np.float32).tobytes()


def test_tokens_to_u32():
    toks = array("H", [0, 1, 255, 256, 65535, 1023])
    assert np.array_equal(np.frombuffer(tokens_to_u32(toks), np.uint32), np.array(toks, np.uint32))
    assert tokens_to_u32(array("H")) == b""


def test_init_equals_reference_bit_for_bit(gpu):
    mc, tc = small_world()
    be = GpuBackend(mc, tc, gpu)
    run(be.init(123))
    state = run(be.export())
    ref = init_params(mc, 123)
    assert np.array_equal(np.frombuffer(state["params"], np.uint32), ref.view(np.uint32))
    assert state["step"] == 0 and not any(state["adam_m"]) and not any(state["adam_v"])
    assert be.describe().startswith(f"gpu ({gpu.engine}, ")


def test_one_submission_per_step_no_new_objects_and_loss_read_only_in_pop(gpu):
    mc, tc = small_world()
    be, ref = GpuBackend(mc, tc, gpu), NumpyBackend(mc, tc)
    run(be.init(1))
    run(ref.init(1))
    data = batches(tc, 10)
    run(be.step(*data[0], 1e-3))  # the first step compiles pipelines and makes bind groups
    run(ref.step(*data[0], 1e-3))
    before = dict(gpu.stats)
    for x, y in data[1:]:
        submits = gpu.stats["submits"]
        run(be.step(x, y, 1e-3))
        run(ref.step(x, y, 1e-3))
        assert gpu.stats["submits"] == submits + 1
    assert {k: gpu.stats[k] - before[k] for k in OBJECTS} == dict.fromkeys(OBJECTS, 0)
    assert gpu.stats["reads"] == before["reads"], "no readback during training steps"
    dispatches_per_step = (gpu.stats["dispatches"] - before["dispatches"]) / 9
    # per layer: 5 forward (1 attention; each norm inside the matmul after it) + 7 backward (1
    # attention; each linear layer's dx and dw in one fused dispatch, each norm's dx and dg in one);
    # plus embedding, final norm + head, loss, mean, their backward (6) and the optimizer (2: partial
    # norms, then AdamW applying the clip)
    assert dispatches_per_step == 10 + 12 * mc.n_layer
    losses = run(be.pop_losses())
    assert gpu.stats["reads"] == before["reads"] + 1, "one read for all pending losses"
    np.testing.assert_allclose(losses, run(ref.pop_losses()), rtol=1e-5)
    assert run(be.pop_losses()) == [] and gpu.stats["reads"] == before["reads"] + 1


def test_losses_survive_a_full_ring(gpu):
    mc, tc = small_world()
    be, ref = GpuBackend(mc, tc, gpu), NumpyBackend(mc, tc)
    run(be.init(2))
    run(ref.init(2))
    for x, y in batches(tc, be.K + 3, seed=5):  # more steps than ring slots without a pop
        run(be.step(x, y, 1e-3))
        run(ref.step(x, y, 1e-3))
    got, want = run(be.pop_losses()), run(ref.pop_losses())
    assert len(got) == be.K + 3
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_evaluate_equals_numpy_including_a_short_last_chunk(gpu):
    mc, tc = small_world()
    be, ref = GpuBackend(mc, tc, gpu), NumpyBackend(mc, tc)
    params = random_params(mc, 3)
    run(be.load(params, None, None, 0))
    run(ref.load(params, None, None, 0))
    rows = 2 * tc.batch + 1  # the third chunk holds one real row
    (x, y), = batches(tc, 1, seed=9, rows=rows)
    got, want = run(be.evaluate(x, y, tc.batch)), run(ref.evaluate(x, y, tc.batch))
    assert abs(got - want) <= 1e-5 * abs(want)
    one_row = run(ref.evaluate(x[-tc.seq_len:], y[-tc.seq_len:], 1))
    assert abs(run(be.evaluate(x[-tc.seq_len:], y[-tc.seq_len:], 1)) - one_row) <= 1e-5 * one_row


def test_checkpoints_move_both_ways_between_gpu_and_numpy(gpu):
    mc, tc = small_world()
    data = batches(tc, 5, seed=4)
    (ex, ey), = batches(tc, 1, seed=8, rows=4)
    # GPU-trained checkpoint -> numpy: same evaluation loss
    be = GpuBackend(mc, tc, gpu)
    run(be.init(7))
    for x, y in data[:3]:
        run(be.step(x, y, 3e-3))
    state = run(be.export())
    ref = NumpyBackend(mc, tc)
    run(ref.load(state["params"], state["adam_m"], state["adam_v"], state["step"]))
    assert run(ref.export()) == state
    assert abs(run(ref.evaluate(ex, ey, 2)) - run(be.evaluate(ex, ey, 2))) <= 1e-5 * run(ref.evaluate(ex, ey, 2))
    # numpy-trained checkpoint (with Adam moments and step) -> GPU: the next step agrees
    ref2 = NumpyBackend(mc, tc)
    run(ref2.init(7))
    for x, y in data[:3]:
        run(ref2.step(x, y, 3e-3))
    be2 = GpuBackend(mc, tc, gpu)
    state2 = run(ref2.export())
    run(be2.load(state2["params"], state2["adam_m"], state2["adam_v"], state2["step"]))
    assert run(be2.export()) == state2
    run(be2.step(*data[3], 3e-3))
    run(ref2.step(*data[3], 3e-3))
    np.testing.assert_allclose(run(be2.pop_losses()), run(ref2.pop_losses())[-1:], rtol=1e-5)
    after_gpu, after_ref = run(be2.export()), run(ref2.export())
    assert after_gpu["step"] == after_ref["step"] == 4
    np.testing.assert_allclose(np.frombuffer(after_gpu["params"], np.float32),
                               np.frombuffer(after_ref["params"], np.float32), atol=1e-5)
    with pytest.raises(ValueError):
        run(be2.load(state2["params"][:-4], None, None, 0))


def test_decode_matches_numpy_kvcache(gpu):
    mc, tc = small_world()
    be, ref = GpuBackend(mc, tc, gpu), NumpyBackend(mc, tc)
    params = random_params(mc, 11)
    run(be.load(params, None, None, 0))
    run(ref.load(params, None, None, 0))
    tokens = [3, 17, 17, 0, 49, 8, 25, 1]  # the full context: positions 0..block_size-1
    for reset_round in range(2):  # a reset restarts the sequence; stale cache slots do not matter
        run(be.decode_reset())
        run(ref.decode_reset())
        for pos, tok in enumerate(tokens[reset_round:]):
            got, want = run(be.decode(tok, pos)), run(ref.decode(tok, pos))
            assert len(got) == mc.vocab_size
            np.testing.assert_allclose(np.array(got), np.array(want), atol=1e-4, rtol=0)
    with pytest.raises(ValueError):
        run(be.decode(1, mc.block_size))  # outside the context
    run(be.decode_reset())
    with pytest.raises(ValueError):
        run(be.decode(1, 1))  # skips ahead of the (empty) cache


def test_overfits_one_batch(gpu):
    mc = ModelConfig(n_layer=1, n_embd=32, n_head=2, block_size=16, vocab_size=64)
    tc = TrainConfig(model="custom", model_config=mc.to_dict(), vocab_size=64, batch=2, weight_decay=0.0)
    be = GpuBackend(mc, tc, gpu)
    run(be.init(0))
    x, y = batches(tc, 1, seed=1)[0]
    losses = []
    for step in range(400):
        run(be.step(x, y, 1e-2))
        if step % 25 == 24:
            losses += run(be.pop_losses())
            if losses[-1] < 0.05:
                break
    assert losses[0] > 3.0 and losses[-1] < 0.05, f"loss {losses[0]:.3f} -> {losses[-1]:.3f} in {len(losses)} steps"


def test_open_gpu_backend_uses_the_configured_engine(gpu):
    mc, tc = small_world(gpu=gpu.engine)
    be = open_gpu_backend(mc, tc)
    assert be.ex.engine == gpu.engine and be.describe().startswith("gpu (")


def test_dropout_adds_its_dispatches_and_creates_nothing_per_step(gpu):
    mc, tc = small_world(dropout=0.2)
    be, ref = GpuBackend(mc, tc, gpu), NumpyBackend(mc, tc)
    run(be.init(1))
    run(ref.init(1))
    data = batches(tc, 6, seed=3)
    run(be.step(*data[0], 1e-3))
    run(ref.step(*data[0], 1e-3))
    before = dict(gpu.stats)
    for x, y in data[1:]:
        run(be.step(x, y, 1e-3))
        run(ref.step(x, y, 1e-3))
    assert {k: gpu.stats[k] - before[k] for k in OBJECTS} == dict.fromkeys(OBJECTS, 0)
    # dropout: + 1 (embedding) + 2 per layer forward (matmul_forward + dropout_add replace the fused
    # residual matmul) + 1 + 2 per layer backward (each branch's gradient through its mask)
    assert (gpu.stats["dispatches"] - before["dispatches"]) / 5 == 10 + 12 * mc.n_layer + 2 + 4 * mc.n_layer
    np.testing.assert_allclose(run(be.pop_losses()), run(ref.pop_losses()), rtol=1e-5)
    x, y = batches(tc, 1, seed=9, rows=5)[0]  # evaluation never drops: equal to numpy's
    assert run(be.evaluate(x, y, tc.batch)) == pytest.approx(run(ref.evaluate(x, y, tc.batch)), rel=1e-5)
