"""The learning-rate schedule at its key steps."""

import pytest

from pyscript_app.train.schedule import lr_at


def lr(step, total=1000):
    return lr_at(step, total, base_lr=1e-3, warmup_steps=50, decay_start_frac=0.8, min_lr_frac=0.1)


def test_warmup_is_linear_from_base_over_warmup():
    assert lr(0) == pytest.approx(1e-3 / 50)
    assert lr(24) == pytest.approx(1e-3 * 25 / 50)
    assert lr(49) == pytest.approx(1e-3)


def test_constant_then_linear_decay_to_the_floor():
    assert lr(50) == lr(500) == lr(800) == pytest.approx(1e-3)
    assert lr(999) == pytest.approx(1e-4)  # last step: min_lr_frac * base_lr
    midway = 800 + (999 - 800) / 2
    assert lr_at(midway, 1000, 1e-3, 50, 0.8, 0.1) == pytest.approx(0.55e-3)
    assert lr(1500) == pytest.approx(1e-4)  # past the end stays at the floor
    assert all(lr(s) >= lr(s + 1) for s in range(50, 999))


def test_no_warmup_and_no_decay():
    assert lr_at(0, 10, 2.0, 0, 1.0, 0.1) == 2.0
    assert lr_at(9, 10, 2.0, 0, 1.0, 0.1) == 2.0  # decay_start_frac 1: no decay within the run


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        lr_at(0, 0, 1.0, 0, 0.5, 0.1)
    with pytest.raises(ValueError):
        lr_at(0, 10, 1.0, 0, 1.5, 0.1)
