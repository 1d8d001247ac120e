import asyncio

import pytest

from _world import tiny_train_config, tiny_world
from pyscript_app.gpu.executor import run_sync
from pyscript_app.train.numpy_backend import NumpyBackend
from pyscript_app.train.trainer import Trainer, eval_starts, make_windows


def run_events(trainer, **kw):
    async def go():
        return [ev async for ev in trainer.run(**kw)]
    return asyncio.run(go())


def make(cfg, world=None):
    tok, train, val = world or tiny_world()
    return Trainer(cfg, NumpyBackend(cfg.model_cfg(), cfg), train, val, tok)


def test_event_stream_and_eval_fields():
    cfg = tiny_train_config()
    evs = run_events(make(cfg))
    kinds = [e["type"] for e in evs]
    assert kinds[0] == "init" and kinds[-1] == "done"
    assert [e["step"] for e in evs if e["type"] == "step"] == [5, 10, 15, 20]
    evals = [e for e in evs if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [10, 20]
    for e in evals:
        for key in ("train_loss", "val_loss", "val_nats_per_byte", "tokens_per_s", "elapsed_s"):
            assert e[key] > 0
        # names-like text is ~2 bytes/token here, so nats/byte is below nats/token
        assert e["val_nats_per_byte"] < e["val_loss"]


def test_loss_falls_and_is_deterministic():
    cfg = tiny_train_config(steps=60, eval_every=30, lr=1e-2)
    a = [e for e in run_events(make(cfg)) if e["type"] == "eval"]
    b = [e for e in run_events(make(cfg)) if e["type"] == "eval"]
    assert [e["val_loss"] for e in a] == [e["val_loss"] for e in b]
    assert a[-1]["val_loss"] < a[0]["val_loss"] < 5.71  # ln(300) = 5.70


def test_resume_continues_the_same_run_exactly():
    cfg = tiny_train_config()
    straight = make(cfg)
    full = [e["loss"] for e in run_events(straight) if e["type"] == "step"]

    first = make(cfg)
    first_events = []

    async def go():
        async for ev in first.run():
            first_events.append(ev)
            if ev["type"] == "step" and ev["step"] == 10:
                first.stop()
        return await first.backend.export()
    state = asyncio.run(go())
    assert first.step == 10 and first_events[-1]["stopped"]

    second = make(cfg)
    asyncio.run(second.backend.load(state["params"], state["adam_m"], state["adam_v"], state["step"]))
    rest = [e["loss"] for e in run_events(second, resume_step=10, fresh=False) if e["type"] == "step"]
    assert rest == full[2:]


def test_eval_slice_is_fixed_and_spans_val():
    starts = eval_starts(100, 8, 5)
    assert starts[0] == 0 and starts[-1] == 100 - 8 - 1 and starts == sorted(starts)
    with pytest.raises(ValueError, match="fewer than a window"):
        eval_starts(8, 8, 2)


def test_windows_are_shifted_targets():
    from array import array
    toks = array("H", range(20))
    x, y = make_windows(toks, [0, 5], 4)
    assert list(x) == [0, 1, 2, 3, 5, 6, 7, 8]
    assert list(y) == [1, 2, 3, 4, 6, 7, 8, 9]


def test_tokens_per_s_counts_training_time_only(monkeypatch):
    """Evaluations and the consumer's pauses between events (checkpoints, the page) do not count
    against tokens/s; elapsed_s is wall time and includes them. A fake clock: every step costs 1 s,
    every evaluation 100 s, the consumer 1000 s per event."""
    import pyscript_app.train.trainer as trainer_module

    clock = [0.0]
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda: clock[0])
    cfg = tiny_train_config()  # 20 steps, read-back every 5, eval every 10
    t = make(cfg)
    step, evaluate = t.backend.step, t.evaluate

    async def slow_step(*a):
        clock[0] += 1.0
        await step(*a)

    async def slow_eval():
        clock[0] += 100.0
        return await evaluate()

    t.backend.step, t.evaluate = slow_step, slow_eval

    async def go():
        out = []
        async for ev in t.run():
            out.append(ev)
            clock[0] += 1000.0
        return out
    evs = [e for e in asyncio.run(go()) if e["type"] in ("step", "eval")]
    tokens_per_step = cfg.batch * t.T
    for e in evs:
        assert e["tokens_per_s"] == pytest.approx(tokens_per_step)  # one step per (fake) second
    last = evs[-1]
    assert last["elapsed_s"] > 2 * 100 + 4 * 1000  # wall time kept the evals and the consumer's pauses


class DeferredReads(NumpyBackend):
    """A backend whose losses can be requested now and awaited later (as GpuBackend.request_losses),
    logging the order of steps, requests and awaits."""

    def __init__(self, *args):
        super().__init__(*args)
        self.log = []

    async def step(self, x, y, lr):
        self.log.append("step")
        await super().step(x, y, lr)

    def request_losses(self):
        self.log.append("request")
        now = run_sync(NumpyBackend.pop_losses(self))  # the losses as they are now

        async def losses():
            self.log.append("await")
            return now

        return losses()


def test_deferred_read_backs_give_the_same_events_one_step_later():
    cfg = tiny_train_config()
    tok, train, val = tiny_world()
    plain = run_events(make(cfg))
    trainer = Trainer(cfg, DeferredReads(cfg.model_cfg(), cfg), train, val, tok)
    deferred = run_events(trainer)
    keys = ("type", "step", "loss", "lr", "val_loss")
    assert [{k: e.get(k) for k in keys} for e in deferred] == [{k: e.get(k) for k in keys} for e in plain]
    # step 5's read-back is requested after step 5 and awaited after step 6 was submitted; steps 10
    # and 20 evaluate, so they read back at once (pop_losses)
    log = trainer.backend.log
    assert log[:8] == ["step"] * 5 + ["request", "step", "await"]
    assert log.count("request") == 2 and all(e["train_steps"] >= e["step"] for e in deferred if e["type"] == "step")


def test_a_stop_after_a_requested_read_back_still_reports_its_step():
    cfg = tiny_train_config()
    tok, train, val = tiny_world()
    trainer = Trainer(cfg, DeferredReads(cfg.model_cfg(), cfg), train, val, tok)
    events = []

    async def go():
        async for ev in trainer.run():
            events.append(ev)
            if ev["type"] == "step" and ev["step"] == 5:
                trainer.stop()  # step 6 is already submitted: the run stops there
    asyncio.run(go())
    assert [e["step"] for e in events if e["type"] == "step"] == [5]
    assert events[-1]["type"] == "done" and events[-1]["step"] == 6 and events[-1]["stopped"]


def test_settle_at_reads_back_at_once_where_the_consumer_checkpoints():
    cfg = tiny_train_config()
    tok, train, val = tiny_world()
    trainer = Trainer(cfg, DeferredReads(cfg.model_cfg(), cfg), train, val, tok)
    trainer.settle_at = lambda step: step == 5
    seen = []

    async def go():
        async for ev in trainer.run():
            if ev["type"] == "step":
                seen.append((ev["step"], trainer.step))
    asyncio.run(go())
    assert seen[0] == (5, 5) and (15, 16) in seen  # step 15 is deferred: the trainer is one step on
    assert trainer.backend.log.count("request") == 1
