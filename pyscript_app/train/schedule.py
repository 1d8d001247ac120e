"""Learning-rate schedule: linear warmup, constant, linear decay. Pure Python (runs in the browser)."""

from __future__ import annotations


def lr_at(
    step: int,
    total_steps: int,
    base_lr: float,
    warmup_steps: int,
    decay_start_frac: float,
    min_lr_frac: float,
) -> float:
    """The learning rate for 0-based `step` of a run of `total_steps` steps.

    lr = base_lr * min(warmup, decay) where
        warmup = min(1, (step + 1) / warmup_steps)            (1 when warmup_steps == 0)
            so step 0 uses base_lr / warmup_steps and step warmup_steps - 1 reaches base_lr;
        decay  = 1                                             for step <= start
               = 1 - (1 - min_lr_frac) * (step - start) / (last - start)   after it
            with start = decay_start_frac * total_steps and last = total_steps - 1, so the last
            step uses min_lr_frac * base_lr (steps past the end stay there). With
            decay_start_frac = 1 there is no decay within the run.

    Example (TrainConfig defaults: warmup 50, decay from 80%, floor 10%) for 1000 steps:
        step 0 -> lr/50, 49 -> lr, 800 -> lr, 999 -> 0.1 lr.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if warmup_steps < 0 or step < 0:
        raise ValueError("step and warmup_steps must be >= 0")
    if not 0.0 <= decay_start_frac <= 1.0 or not 0.0 <= min_lr_frac <= 1.0:
        raise ValueError("decay_start_frac and min_lr_frac must be in [0, 1]")

    warmup = 1.0 if warmup_steps == 0 else min(1.0, (step + 1) / warmup_steps)

    start = decay_start_frac * total_steps
    last = total_steps - 1
    if step <= start:
        decay = 1.0
    elif last <= start:
        decay = min_lr_frac
    else:
        progress = min(1.0, (step - start) / (last - start))
        decay = 1.0 - (1.0 - min_lr_frac) * progress
    return base_lr * min(warmup, decay)
