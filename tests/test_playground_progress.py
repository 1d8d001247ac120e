"""pyscript_app/playground/progress.py: the Trainer's events folded into what the page shows."""

from __future__ import annotations

import math

from pyscript_app.playground.progress import Progress


def test_events_update_step_losses_points_and_state():
    p = Progress(total_steps=40)
    assert p.eta_s is None and p.state == "idle"
    p.apply({"type": "init", "step": 0, "backend": "gpu (x)"})
    assert p.state == "training" and p.backend == "gpu (x)"
    p.apply({"type": "step", "step": 10, "loss": 6.5, "tokens_per_s": 100.0, "elapsed_s": 2.0, "lr": 1e-3})
    assert (p.step, p.train_loss, p.tokens_per_s) == (10, 6.5, 100.0)
    assert math.isclose(p.eta_s, 6.0)  # 30 steps left at 0.2 s per step
    p.apply({"type": "eval", "step": 10, "train_loss": 6.6, "val_loss": 6.4, "val_nats_per_byte": 3.0,
             "tokens_per_s": 90.0, "elapsed_s": 2.5})
    p.apply({"type": "step", "step": 20, "loss": float("nan"), "tokens_per_s": 1.0, "elapsed_s": 3.0, "lr": 0})
    assert p.train_points == [(10, 6.5)] and p.val_points == [(10, 6.4)]  # a NaN loss is not plotted
    p.apply({"type": "samples", "step": 20, "samples": ["ab"]})
    p.apply({"type": "done", "step": 20, "stopped": True, "elapsed_s": 3.5})
    assert (p.state, p.step, p.samples) == ("stopped", 20, ["ab"])


def test_a_resumed_run_counts_its_pace_from_the_resume_step():
    p = Progress(total_steps=100, start_step=60)
    assert p.step == 60
    p.apply({"type": "step", "step": 70, "loss": 5.0, "tokens_per_s": 1.0, "elapsed_s": 5.0, "lr": 0})
    assert math.isclose(p.eta_s, 15.0)  # 30 steps left at 0.5 s per step
    p.step_losses.extend([5.1, 5.0])
    assert p.loss_log()["start_step"] == 60 and p.loss_log()["losses"] == [5.1, 5.0]


def test_ms_per_step_and_host_share_come_from_the_training_time_and_the_read_back_waits():
    p = Progress(total_steps=40, start_step=10)
    p.timing = {"read_s": 0.3}
    p.apply({"type": "step", "step": 20, "loss": 6.0, "tokens_per_s": 100.0, "elapsed_s": 2.0, "lr": 1e-3,
             "train_s": 1.0, "train_steps": 10})
    assert math.isclose(p.ms_per_step, 100.0) and math.isclose(p.host_share, 0.7)
    assert math.isclose(p.host_ms_per_step, 70.0)
