"""federated/local.py: the session's local TrainConfig, learning-rate schedule and per-round batches."""

from array import array

import pytest

from pyscript_app import rng
from pyscript_app.config import TrainConfig, preset
from pyscript_app.federated.local import LOCAL_WARMUP_STEPS, local_lr, round_batch, session_train_config
from pyscript_app.train.schedule import lr_at

MC = preset("nano", vocab_size=300)


def _session(**over) -> dict:
    return {"model": "nano", "model_config": MC.to_dict(), "dataset": "tiny", "batch": 2, "blocksize": 8,
            "max_local_steps": 3, **over}


def test_the_session_fixes_batch_context_steps_and_model():
    cfg = session_train_config(_session(), "gpu", "auto")
    assert (cfg.batch, cfg.seq_len, cfg.steps, cfg.backend) == (2, 8, 3, "gpu")
    assert cfg.model_cfg() == MC and cfg.lr == TrainConfig.lr and cfg.warmup_steps == LOCAL_WARMUP_STEPS


def test_a_session_lr_is_constant_and_the_default_warms_up_over_the_clients_first_steps():
    fixed = session_train_config(_session(lr=0.01), "numpy", "auto")
    assert [local_lr(fixed, t) for t in (0, 5, 500)] == [0.01] * 3
    warm = session_train_config(_session(), "numpy", "auto")
    assert local_lr(warm, 0) == pytest.approx(warm.lr / LOCAL_WARMUP_STEPS)
    assert local_lr(warm, LOCAL_WARMUP_STEPS - 1) == local_lr(warm, 10_000) == warm.lr


def test_a_round_batch_is_drawn_from_the_rounds_seed_and_step():
    tokens = array("H", range(200))
    x, y = round_batch(tokens, data_seed=7, local_step=2, B=3, T=5)
    starts = rng.batch_starts(7, 2, 3, 200, 5)
    assert list(x) == [s + i for s in starts for i in range(5)]
    assert list(y) == [s + 1 + i for s in starts for i in range(5)]
    assert round_batch(tokens, 8, 2, 3, 5) != (x, y) and round_batch(tokens, 7, 3, 3, 5) != (x, y)


def test_a_session_that_plans_rounds_decays_the_lr_by_global_step_like_a_single_run():
    cfg = session_train_config(_session(rounds=10, max_local_steps=10), "numpy", "auto")
    assert cfg.steps == 100
    single = TrainConfig(steps=100, warmup_steps=0)
    for g in (0, 50, 80, 90, 99):
        assert local_lr(cfg, adam_steps=50, global_step=g) == pytest.approx(
            lr_at(g, 100, single.lr, 0, single.decay_start_frac, single.min_lr_frac))
    assert local_lr(cfg, 50, 99) == pytest.approx(cfg.lr * cfg.min_lr_frac)
    assert local_lr(cfg, 50, 5000) == local_lr(cfg, 50, 99)  # past the plan: the floor


def test_the_warmup_follows_the_clients_own_steps_not_the_global_step():
    cfg = session_train_config(_session(rounds=10, max_local_steps=10), "numpy", "auto")
    late_joiner = local_lr(cfg, adam_steps=0, global_step=40)  # joined at round 4: fresh Adam moments
    assert late_joiner == pytest.approx(cfg.lr / LOCAL_WARMUP_STEPS)
    assert local_lr(cfg, LOCAL_WARMUP_STEPS - 1, 40) == cfg.lr


def test_a_session_without_planned_rounds_never_decays():
    cfg = session_train_config(_session(), "numpy", "auto")
    assert local_lr(cfg, 100, 0) == local_lr(cfg, 100, 10**6) == cfg.lr
