"""numpy_backend.py with dropout: each step's masks belong to its AdamW step (so a resumed run
continues the sequence), evaluation never drops, and dropout 0 is exactly the plain reference."""

import asyncio
from array import array

import numpy as np

from pyscript_app.config import ModelConfig, TrainConfig
from pyscript_app.train.numpy_backend import NumpyBackend
from pyscript_app.reference import model
from pyscript_app.reference.dropout import Dropout

MC = ModelConfig(n_layer=2, n_embd=16, n_head=2, block_size=8, vocab_size=40)


def run(coro):
    return asyncio.run(coro)


def world(dropout: float, seed: int = 4):
    tc = TrainConfig(model="custom", model_config=MC.to_dict(), vocab_size=40, batch=3, dropout=dropout, seed=seed)
    toks = np.random.default_rng(0).integers(0, 40, size=(tc.batch, 9)).astype(np.uint16)
    x, y = array("H", toks[:, :-1].tobytes()), array("H", toks[:, 1:].tobytes())
    return tc, x, y, toks[:, :-1].astype(np.int64), toks[:, 1:].astype(np.int64)


def weights(seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(MC.param_count) * 0.3).astype(np.float32)


def test_step_uses_the_masks_of_its_adamw_step_and_resume_continues_them():
    tc, x, y, idx, tgt = world(dropout=0.3)
    flat = weights(1)
    be = NumpyBackend(MC, tc)
    run(be.load(flat.tobytes(), np.zeros_like(flat).tobytes(), np.zeros_like(flat).tobytes(), 6))
    run(be.step(x, y, 1e-3))
    (loss,) = run(be.pop_losses())
    expected, _ = model.loss_and_grad(MC, flat, idx, tgt, Dropout(0.3, tc.seed, 7))  # the 7th AdamW step
    assert loss == expected
    other_step, _ = model.loss_and_grad(MC, flat, idx, tgt, Dropout(0.3, tc.seed, 6))
    assert loss != other_step


def test_evaluate_never_drops():
    tc, x, y, idx, tgt = world(dropout=0.5)
    flat = weights(2)
    be = NumpyBackend(MC, tc)
    run(be.load(flat.tobytes(), None, None, 0))
    assert run(be.evaluate(x, y, tc.batch)) == model.forward(MC, flat, idx, tgt)[0]


def test_zero_dropout_is_the_plain_reference_step():
    tc, x, y, idx, tgt = world(dropout=0.0)
    flat = weights(3)
    be = NumpyBackend(MC, tc)
    run(be.load(flat.tobytes(), None, None, 0))
    run(be.step(x, y, 1e-3))
    assert run(be.pop_losses()) == [model.forward(MC, flat, idx, tgt)[0]]


def test_dropout_still_trains():
    tc, x, y, _, _ = world(dropout=0.1)
    be = NumpyBackend(MC, tc)
    run(be.init(0))
    for _ in range(60):
        run(be.step(x, y, 1e-2))
    losses = run(be.pop_losses())
    assert np.mean(losses[-5:]) < losses[0] - 1.0, losses
