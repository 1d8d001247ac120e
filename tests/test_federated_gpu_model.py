"""federated/gpu_model.py on the native GPU: the round's tensors against numpy's arithmetic.

The delta (f16) and W + decode(u) (f32) must be bit-identical to what numpy (the relay) computes;
the AdamW state must survive new global weights; a fresh client's first weights start it at zero."""

import asyncio

import numpy as np
import pytest

from _federated import random_tokens
from _gpu import gpu  # noqa: F401
from pyscript_app.config import preset
from pyscript_app.federated.gpu_model import GpuRoundModel
from pyscript_app.federated.local import session_train_config
from pyscript_app.federated.frames import DTYPE_F16, DTYPE_F32
from pyscript_app.gpu.trainer_backend import GpuBackend
from pyscript_app.reference.init import init_params
from pyscript_app.federated.numpy_model import f32_sha256

pytestmark = pytest.mark.gpu
MC = preset("nano", vocab_size=300)
SESSION = {"model": "nano", "model_config": MC.to_dict(), "dataset": "tiny", "batch": 2, "blocksize": 8,
           "max_local_steps": 3}


def _model(ex) -> GpuRoundModel:
    cfg = session_train_config(SESSION, "gpu", "auto")
    return GpuRoundModel(GpuBackend(MC, cfg, ex), random_tokens(MC.vocab_size), cfg)


def test_delta_and_update_are_bit_identical_to_numpy(gpu):
    async def go():
        m = _model(gpu)
        w0 = init_params(MC, 1)
        assert await m.load_weights(w0.tobytes()) == f32_sha256(w0)
        for h in range(3):
            await m.step(data_seed=11, local_step=h)
        assert len(await m.losses()) == 3
        params = np.frombuffer((await m.backend.export())["params"], np.float32)
        assert not np.array_equal(params, w0)
        delta = np.frombuffer(await m.delta_f16(), "<f2")
        np.testing.assert_array_equal(delta.view("<u2"), np.clip(params - w0, -65504, 65504).astype("<f2").view("<u2"))

        u = (delta.astype(np.float32) * 0.5).astype("<f2")  # an update with subnormals and zeros in it
        expect = np.add(w0, u.astype(np.float32), dtype=np.float32)
        assert await m.apply_update(u.tobytes(), DTYPE_F16) == f32_sha256(expect)
        assert np.frombuffer((await m.backend.export())["params"], np.float32).tobytes() == expect.tobytes()

        u32 = np.random.default_rng(2).standard_normal(MC.param_count).astype("<f4") * 1e-3
        assert await m.apply_update(u32.tobytes(), DTYPE_F32) == f32_sha256(np.add(expect, u32, dtype=np.float32))

    asyncio.run(go())


def test_new_weights_keep_the_adam_state_and_a_fresh_client_starts_it_at_zero(gpu):
    async def go():
        m = _model(gpu)
        await m.backend.load(init_params(MC, 9).tobytes(), np.ones(MC.param_count, np.float32).tobytes(),
                             np.ones(MC.param_count, np.float32).tobytes(), 5)  # a dirty backend
        await m.load_weights(init_params(MC, 1).tobytes())
        state = await m.backend.export()
        assert state["step"] == 0 and not np.any(np.frombuffer(state["adam_m"], np.float32))
        await m.step(data_seed=3, local_step=0)
        before = await m.backend.export()
        w1 = init_params(MC, 2)
        await m.load_weights(w1.tobytes())
        after = await m.backend.export()
        assert after["adam_m"] == before["adam_m"] and after["adam_v"] == before["adam_v"] and after["step"] == 1
        assert after["params"] == w1.tobytes() and np.any(np.frombuffer(after["adam_m"], np.float32))
        assert m.adam_steps == 1

    asyncio.run(go())


def test_an_update_of_the_wrong_size_is_refused(gpu):
    async def go():
        m = _model(gpu)
        await m.load_weights(init_params(MC, 1).tobytes())
        with pytest.raises(ValueError, match="elements"):
            await m.apply_update(b"\0" * 2 * (MC.param_count - 1), DTYPE_F16)

    asyncio.run(go())
