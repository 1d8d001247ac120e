"""The worker's local training: Adam state kept across global weights, the relay's f32 update math,
the f16 delta, the local learning rate, and the session's data checks. Tiny seeded worlds, numpy."""

from __future__ import annotations

import asyncio
from array import array

import numpy as np
import pytest

from pyscript_app.config import preset
from pyscript_app.errors import UserError
from pyscript_app.reference.init import init_params
from pyscript_app.tokenfile import prepare_dataset
from pyscript_app.worker_session import (
    LOCAL_WARMUP_STEPS, LocalTrainer, f32_sha256, load_session_data, session_train_config,
)
from server import aggregate

MC = preset("nano", vocab_size=300)


def _session(**over) -> dict:
    return {"model": "nano", "model_config": MC.to_dict(), "dataset": "tiny", "batch": 2, "blocksize": 8,
            "max_local_steps": 3, "tokenizer_sha256": "", **over}


def _trainer(session: dict | None = None) -> LocalTrainer:
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, MC.vocab_size, 400).astype(np.uint16)
    return LocalTrainer(session_train_config(session or _session(), "numpy", "auto"), array("H", tokens.tobytes()))


def test_new_global_weights_keep_the_adam_moments():
    async def go():
        t = _trainer()
        await t.set_global(init_params(MC, 1))
        await t.step(data_seed=7, local_step=0)
        before = await t.backend.export()
        w_next = init_params(MC, 2)
        await t.set_global(w_next)
        after = await t.backend.export()
        assert after["adam_m"] == before["adam_m"] and after["adam_v"] == before["adam_v"]
        assert after["step"] == before["step"] == 1 and np.any(np.frombuffer(after["adam_m"], np.float32))
        assert after["params"] == w_next.tobytes()

    asyncio.run(go())


def test_delta_is_params_minus_the_round_start_in_f16():
    async def go():
        t = _trainer()
        w0 = init_params(MC, 3)
        await t.set_global(w0)
        for h in range(2):
            await t.step(data_seed=5, local_step=h)
        params = np.frombuffer((await t.backend.export())["params"], np.float32)
        delta = np.frombuffer(await t.delta_f16(), "<f2")
        np.testing.assert_array_equal(delta, (params - w0).astype(np.float16))
        assert np.abs(delta).max() > 0

    asyncio.run(go())


def test_applying_an_update_matches_the_relay_bit_for_bit():
    async def go():
        t = _trainer()
        await t.set_global(init_params(MC, 4))
        u = (np.random.default_rng(1).standard_normal(MC.param_count) * 1e-2).astype("<f2")
        mine = t.apply_update(memoryview(u.tobytes()), "<f2")
        relays = aggregate.apply_update(t.weights, u.astype(np.float32))
        assert f32_sha256(mine) == aggregate.weights_sha256(relays)

    asyncio.run(go())


def test_local_learning_rate_warms_up_unless_the_session_fixes_it():
    t = _trainer()
    assert t.cfg.warmup_steps == LOCAL_WARMUP_STEPS
    first = t.lr()
    t.adam_steps = LOCAL_WARMUP_STEPS
    assert first == pytest.approx(t.cfg.lr / LOCAL_WARMUP_STEPS) and t.lr() == t.cfg.lr
    fixed = _trainer(_session(lr=1e-3))
    assert fixed.lr() == 1e-3 and fixed.cfg.warmup_steps == 0


def test_session_data_must_use_the_session_tokenizer(tmp_path):
    text = tmp_path / "tiny.txt"
    text.write_text("".join(f"name{i % 37}x{i % 11}\n" for i in range(300)))
    stats = prepare_dataset(str(text), tmp_path, vocab_size=300)
    train, val = load_session_data(_session(tokenizer_sha256=stats["tokenizer_sha256"]), tmp_path)
    assert len(train) == stats["train"]["tokens"] and len(val) == stats["val"]["tokens"]
    with pytest.raises(UserError, match="tokenizer"):
        load_session_data(_session(tokenizer_sha256="ab" * 32), tmp_path)
    with pytest.raises(UserError, match="tokens"):
        load_session_data(_session(tokenizer_sha256=stats["tokenizer_sha256"],
                                   model_config={**MC.to_dict(), "vocab_size": 1024}), tmp_path)
