"""pyscript_app/lessons/training.py: the stepped run (on the numpy backend), position views, tensor rows."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from _world import tiny_train_config, tiny_world
from pyscript_app.lessons.tinyforward import TinyGPT
from pyscript_app.lessons.training import (HEATMAP_TENSORS, SteppedRun, lesson_config, lr_points, position_views,
                                           tensor_rows, uniform_loss)
from pyscript_app.config import preset
from pyscript_app.train.numpy_backend import NumpyBackend
from pyscript_app.train.schedule import lr_at
from pyscript_app.train.trainer import Trainer


def test_lesson_config_and_schedule_points():
    cfg = lesson_config(120)
    assert (cfg.model, cfg.dataset, cfg.steps) == ("nano", "names", 120)
    points = lr_points(cfg)
    assert len(points) == 120 and points[0] == (0, lr_at(0, 120, cfg.lr, cfg.warmup_steps, cfg.decay_start_frac,
                                                          cfg.min_lr_frac))
    assert max(lr for _, lr in points) == pytest.approx(cfg.lr)
    assert points[-1][1] == pytest.approx(cfg.min_lr_frac * cfg.lr)
    assert uniform_loss(1024) == pytest.approx(6.931, abs=1e-3)
    nano = preset("nano")
    names = {n for n, _ in nano.param_shapes()}
    assert set(HEATMAP_TENSORS) <= names


def make_run(steps: int = 12) -> tuple[SteppedRun, Trainer]:
    tok, train, val = tiny_world()
    cfg = tiny_train_config(steps=steps, lr=1e-2)
    run = SteppedRun(cfg, NumpyBackend(cfg.model_cfg(), cfg), tok, train, val)
    reference = Trainer(cfg, NumpyBackend(cfg.model_cfg(), cfg), train, val, tok)
    return run, reference


def test_stepped_run_trains_exactly_as_the_trainer():
    run, reference = make_run(steps=12)

    async def go():
        await run.start()
        first = await run.step()
        for _ in range(5):
            await run.step(read_loss=False)
        late = await run.read_losses()
        while not run.finished:
            await run.step()
        val = await run.evaluate()
        ref_losses = []
        async for ev in reference.run():
            if ev["type"] == "eval":
                ref_losses.append(ev["val_loss"])
        return first, late, val, ref_losses

    first, late, val, ref_losses = asyncio.run(go())
    assert first == pytest.approx(math.log(run.cfg.vocab_size), abs=0.3)  # a fresh model: about ln V
    assert len(late) == 5 and [s for s, _ in run.losses][:6] == [1, 2, 3, 4, 5, 6]
    assert len(run.losses) == 12 and run.steps_done == 12
    assert val == pytest.approx(ref_losses[-1], rel=1e-6)  # same batches, schedule and AdamW as the Trainer
    assert run.val_losses == [(12, val)]
    with pytest.raises(ValueError, match="all its 12 steps"):
        asyncio.run(run.step())


def test_next_window_is_row_0_of_the_next_batch():
    run, reference = make_run()
    x, y = run.next_window()
    bx, by = reference.batch(0)
    T = run.trainer.T
    assert x == list(bx[:T]) and y == list(by[:T]) and x[1:] == y[:-1]


def test_position_views_read_one_training_row():
    run, _ = make_run()
    asyncio.run(run.start())
    params = np.frombuffer(asyncio.run(run.backend.export())["params"], dtype=np.float32)
    tiny = TinyGPT(run.cfg.model_cfg(), params.tolist())
    x, y = run.next_window()
    views = position_views(tiny, x, y, k=3)
    assert [v.pos for v in views] == list(range(len(x)))
    v = views[2]
    assert v.context == x[:3] and v.target == y[2] and len(v.top) == 3
    assert v.top[0][1] >= v.top[1][1] >= v.top[2][1]
    assert v.loss == pytest.approx(-math.log(v.target_prob))
    # the mean of the positions' losses is the model's loss on this row
    logits = tiny.forward(x, all_logits=True).logits
    lse = [max(r) + math.log(sum(math.exp(a - max(r)) for a in r)) for r in logits]
    assert sum(v.loss for v in views) == pytest.approx(sum(l - r[t] for l, r, t in zip(lse, logits, y)), rel=1e-9)


def test_tensor_rows():
    assert tensor_rows([1, 2, 3, 4, 5, 6], (2, 3)) == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert tensor_rows([1, 2], (2,)) == [[1.0, 2.0]]
    with pytest.raises(ValueError):
        tensor_rows([1, 2, 3], (2, 2))
