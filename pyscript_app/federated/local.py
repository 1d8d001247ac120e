"""A federated client's local training, as the relay's session config fixes it (pure Python).

Shared by the native worker (federated/numpy_model.py) and the browser (federated/gpu_model.py), so
both take the same steps for the same round:

    cfg = session_train_config(session, backend="gpu", gpu="auto")   # from join_ack's config
    x, y = round_batch(train_tokens, data_seed, h, cfg.batch, cfg.seq_len)   # local step h of a round
    lr = local_lr(cfg, adam_steps, global_step)   # adam_steps: this client's AdamW steps, across rounds
                                                  # global_step = round * H + h: the session's clock

Batches: local step h of a round draws B windows of T+1 tokens at rng.batch_starts(data_seed, h, ...)
with the round's data_seed from the relay (its own per client and round, so no two clients train on
the same batches).

Learning rate: one schedule for the whole session, by global step g = round * H + h, the same for
every client whatever it joined or however many steps it took (schedule.lr_at, as `tabgpt train`):
    base      the session's `lr`, else TrainConfig's default lr
    decay     when the session plans `rounds`: constant, then linear down to min_lr_frac (10%) over
              the last 20% of its rounds * H global steps (later rounds stay at the floor); a session
              with no planned length keeps the base lr
    warmup    times min(1, (adam_steps + 1) / LOCAL_WARMUP_STEPS), over the client's OWN first AdamW
              steps (its Adam moments start at zero when it joins; they carry over between rounds, so
              the warmup is never repeated); none when the session fixes `lr`
Why decay: a constant lr leaves each round's delta as noisy at the end as at the start, and the outer
step (DiLoCo's momentum most) carries that noise into the global weights; decaying it as a single
run does let the federated run end as calm as one (measured in benchmarks/federated_vs_single.py).
"""

from __future__ import annotations

from array import array

from .. import rng
from ..config import TrainConfig
from ..train.schedule import lr_at
from ..train.trainer import make_windows

LOCAL_WARMUP_STEPS = 10
F16_MAX = 65504.0  # a delta saturates here so a finite delta stays finite in f16


def session_train_config(session: dict, backend: str, gpu: str) -> TrainConfig:
    """The TrainConfig of local training, from the session config that came in join_ack."""
    """steps: the session's global steps, planned rounds * H (H and no decay, min_lr_frac 1, when it plans none)."""
    model_config = dict(session["model_config"])
    lr = session.get("lr") or TrainConfig.lr
    H, rounds = int(session["max_local_steps"]), session.get("rounds")
    cfg = TrainConfig(
        dataset=session["dataset"], model=session["model"], steps=H * int(rounds) if rounds else H,
        batch=int(session["batch"]), block_size=int(session["blocksize"]), lr=float(lr),
        warmup_steps=0 if session.get("lr") else LOCAL_WARMUP_STEPS,
        min_lr_frac=TrainConfig.min_lr_frac if rounds else 1.0, backend=backend, gpu=gpu,
        vocab_size=int(model_config["vocab_size"]), model_config=model_config,
    )
    return cfg.validate()


def local_lr(cfg: TrainConfig, adam_steps: int, global_step: int = 0) -> float:
    """The learning rate of the client's next AdamW step (its (adam_steps + 1)-th), taken at the
    session's `global_step` (round * H + local step)."""
    warm = cfg.warmup_steps
    warmup = 1.0 if warm == 0 else min(1.0, (adam_steps + 1) / warm)
    return warmup * lr_at(global_step, cfg.steps, cfg.lr, 0, cfg.decay_start_frac, cfg.min_lr_frac)


def round_batch(train_tokens: array, data_seed: int, local_step: int, B: int, T: int) -> tuple[array, array]:
    """Inputs and targets (array('H') of B*T tokens each, rows (B, T)) of local step `local_step`."""
    starts = rng.batch_starts(data_seed, local_step, B, len(train_tokens), T)
    return make_windows(train_tokens, starts, T)
