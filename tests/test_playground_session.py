"""pyscript_app/playground/session.py: a playground run on the numpy backend — checkpoints, Stop,
Resume (the resumed run continues the very same trajectory), every step's loss."""

from __future__ import annotations

import asyncio

import pytest

from pyscript_app.train.checkpoint import CheckpointError
from pyscript_app.train.numpy_backend import NumpyBackend
from pyscript_app.playground.session import TrainingSession
from pyscript_app.playground.settings import parse_settings
from pyscript_app.playground.store import CheckpointStore, MemoryFiles
from pyscript_app.playground.textdata import check_text, prepare_text
from pyscript_app.train.run_state import read_checkpoint
from test_playground_textdata import names_text

FORM = {"dataset": "custom", "model": "nano", "steps": "20", "batch": "2", "context": "8", "lr": "0.01",
        "seed": "5", "checkpoint_every": "10", "temperature": "0.8", "top_k": "0"}


@pytest.fixture(scope="module")
def data():
    return prepare_text(check_text(names_text(seed=1)))


def _session(data, store, form=FORM):
    settings = parse_settings(form)
    cfg = settings.train_config()
    backend = NumpyBackend(cfg.model_cfg(), cfg)
    return TrainingSession(settings, data, backend, store, settings.run_key(data.data_id), {"backend": "numpy"})


def _run(session, resume=None, stop_at=None, on_first_step=None):
    events = []

    def emit(event, progress):
        events.append(event)
        if stop_at is not None and event["type"] == "step" and event["step"] >= stop_at:
            session.stop()

    progress = asyncio.run(session.run(emit, resume=resume, on_first_step=on_first_step))
    return progress, events


def test_a_run_logs_every_step_checkpoints_and_samples(data):
    store = CheckpointStore(MemoryFiles())
    session = _session(data, store)
    progress, events = _run(session)
    assert [e["type"] for e in events][0] == "init" and events[-1]["type"] == "done"
    assert len(progress.step_losses) == 20 and progress.state == "done"
    assert progress.step_losses[-1] < progress.step_losses[0]
    assert progress.train_points[-1] == (20, progress.step_losses[-1])  # the read-back loss is step 20's
    assert len(progress.samples) == 5
    assert asyncio.run(store.summary(session.key))["step"] == 20
    run = read_checkpoint(asyncio.run(store.load(session.key)))
    assert run.step == 20 and run.resumable and run.tokenizer.sha256 == data.tokenizer.sha256


def test_stop_then_resume_continues_the_same_trajectory(data):
    whole, _ = _run(_session(data, CheckpointStore(MemoryFiles())))
    store = CheckpointStore(MemoryFiles())
    first = _session(data, store)
    stopped, events = _run(first, stop_at=10)
    assert stopped.state == "stopped" and stopped.step == 10 and len(stopped.step_losses) == 10
    assert asyncio.run(store.summary(first.key))["step"] == 10  # saved where it stopped
    second = _session(data, store)
    resumed, _ = _run(second, resume=read_checkpoint(asyncio.run(store.load(second.key))))
    assert resumed.start_step == 10 and resumed.step == 20 and resumed.loss_log()["start_step"] == 10
    assert resumed.step_losses == pytest.approx(whole.step_losses[10:], rel=1e-5)


def test_a_stop_between_read_backs_still_logs_every_step(data):
    session = _session(data, CheckpointStore(MemoryFiles()), {**FORM, "steps": "40"})
    calls = {"n": 0}
    original = session.backend.step

    async def step_then_stop(x, y, lr):
        await original(x, y, lr)
        calls["n"] += 1
        if calls["n"] == 13:
            session.stop()

    session.backend.step = step_then_stop
    progress, _ = _run(session)
    assert progress.step == 13 and len(progress.step_losses) == 13


def test_a_checkpoint_of_another_model_is_refused(data):
    store = CheckpointStore(MemoryFiles())
    session = _session(data, store)
    _run(session)
    blob = asyncio.run(store.load(session.key))
    tiny = _session(data, CheckpointStore(MemoryFiles()), {**FORM, "model": "tiny"})
    with pytest.raises(CheckpointError, match="holds a nano model"):
        _run(tiny, resume=read_checkpoint(blob))


def test_the_first_step_is_reported_and_its_loss_still_logged_in_order(data):
    session = _session(data, CheckpointStore(MemoryFiles()), {**FORM, "samples": "0"})
    seen = []
    progress, events = _run(session, on_first_step=lambda: seen.append(len(session.progress.step_losses)))
    assert seen == [0]  # called once, after step 1, before any read-back reached the log
    whole, _ = _run(_session(data, CheckpointStore(MemoryFiles())))
    assert progress.step_losses == whole.step_losses  # the early read changes nothing
    assert "samples" not in [e["type"] for e in events] and progress.samples == []
