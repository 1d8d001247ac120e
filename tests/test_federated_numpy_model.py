"""federated/numpy_model.py: the native worker's round model. Adam state kept across global weights,
the relay's f32 update math bit for bit, the f16 delta, the local learning rate. Tiny seeded worlds."""

from __future__ import annotations

import asyncio
from array import array

import numpy as np
import pytest

from pyscript_app.config import preset
from pyscript_app.federated.local import LOCAL_WARMUP_STEPS, session_train_config
from pyscript_app.federated.numpy_model import NumpyRoundModel, f32_sha256
from pyscript_app.federated.frames import DTYPE_F16, DTYPE_F32
from pyscript_app.reference.init import init_params
from server import aggregate

MC = preset("nano", vocab_size=300)


def _session(**over) -> dict:
    return {"model": "nano", "model_config": MC.to_dict(), "dataset": "tiny", "batch": 2, "blocksize": 8,
            "max_local_steps": 3, "tokenizer_sha256": "", **over}


def _model(session: dict | None = None) -> NumpyRoundModel:
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, MC.vocab_size, 400).astype(np.uint16)
    return NumpyRoundModel(session_train_config(session or _session(), "numpy", "auto"), array("H", tokens.tobytes()))


def test_new_global_weights_keep_the_adam_moments():
    async def go():
        m = _model()
        w0 = init_params(MC, 1)
        assert await m.load_weights(w0.tobytes()) == f32_sha256(w0)
        await m.step(data_seed=7, local_step=0)
        assert len(await m.losses()) == 1
        before = await m.backend.export()
        w_next = init_params(MC, 2)
        await m.load_weights(w_next.tobytes())
        after = await m.backend.export()
        assert after["adam_m"] == before["adam_m"] and after["adam_v"] == before["adam_v"]
        assert after["step"] == before["step"] == 1 and np.any(np.frombuffer(after["adam_m"], np.float32))
        assert after["params"] == w_next.tobytes()

    asyncio.run(go())


def test_a_fresh_client_starts_its_adam_moments_at_zero():
    async def go():
        m = _model()
        ones = np.ones(MC.param_count, np.float32).tobytes()
        await m.backend.load(init_params(MC, 9).tobytes(), ones, ones, 5)  # a dirty backend
        await m.load_weights(init_params(MC, 1).tobytes())
        state = await m.backend.export()
        assert state["step"] == 0 and not np.any(np.frombuffer(state["adam_m"], np.float32))

    asyncio.run(go())


def test_delta_is_params_minus_the_round_start_in_f16():
    async def go():
        m = _model()
        w0 = init_params(MC, 3)
        await m.load_weights(w0.tobytes())
        for h in range(2):
            await m.step(data_seed=5, local_step=h)
        params = np.frombuffer((await m.backend.export())["params"], np.float32)
        delta = np.frombuffer(await m.delta_f16(), "<f2")
        np.testing.assert_array_equal(delta, (params - w0).astype(np.float16))
        assert np.abs(delta).max() > 0

    asyncio.run(go())


def test_applying_an_update_matches_the_relay_bit_for_bit_and_restarts_the_params():
    async def go():
        m = _model()
        w0 = init_params(MC, 4)
        await m.load_weights(w0.tobytes())
        await m.step(data_seed=5, local_step=0)
        u = (np.random.default_rng(1).standard_normal(MC.param_count) * 1e-2).astype("<f2")
        relays = aggregate.apply_update(w0, u.astype(np.float32))
        assert await m.apply_update(u.tobytes(), DTYPE_F16) == aggregate.weights_sha256(relays)
        assert (await m.backend.export())["params"] == relays.tobytes()
        u32 = (np.random.default_rng(2).standard_normal(MC.param_count) * 1e-3).astype("<f4")
        assert await m.apply_update(u32.tobytes(), DTYPE_F32) == f32_sha256(np.add(relays, u32, dtype=np.float32))
        with pytest.raises(ValueError, match="dtype"):
            await m.apply_update(u.tobytes(), 9)

    asyncio.run(go())


def test_local_learning_rate_warms_up_unless_the_session_fixes_it():
    m = _model()
    assert m.cfg.warmup_steps == LOCAL_WARMUP_STEPS
    first = m.lr()
    m.adam_steps = LOCAL_WARMUP_STEPS
    assert first == pytest.approx(m.cfg.lr / LOCAL_WARMUP_STEPS) and m.lr() == m.cfg.lr
    fixed = _model(_session(lr=1e-3))
    assert fixed.lr() == 1e-3 and fixed.cfg.warmup_steps == 0


def test_weights_of_the_wrong_size_are_refused():
    async def go():
        with pytest.raises(ValueError, match="elements"):
            await _model().load_weights(np.zeros(MC.param_count - 1, np.float32).tobytes())

    asyncio.run(go())


def test_a_step_takes_the_sessions_lr_at_its_global_step():
    async def go():
        norms = []
        for global_step in (0, 99):  # a plan of 10 rounds of 10 steps: full lr, then the 10% floor
            m = _model(_session(rounds=10, max_local_steps=10, lr=1e-3))
            w0 = init_params(MC, 6)
            await m.load_weights(w0.tobytes())
            await m.step(data_seed=3, local_step=0, global_step=global_step)
            norms.append(np.linalg.norm(np.frombuffer(await m.delta_f16(), "<f2").astype(np.float64)))
        assert norms[1] == pytest.approx(0.1 * norms[0], rel=0.02)  # AdamW's first step scales with lr

    asyncio.run(go())
