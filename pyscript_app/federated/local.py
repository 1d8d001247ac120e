"""A federated client's local training, as the relay's session config fixes it (pure Python).

Shared by the native worker (worker_session.py) and the browser (federated/gpu_model.py), so both
take the same steps for the same round:

    cfg = session_train_config(session, backend="gpu", gpu="auto")   # from join_ack's config
    x, y = round_batch(train_tokens, data_seed, h, cfg.batch, cfg.seq_len)   # local step h of a round
    lr = local_lr(cfg, adam_steps)        # adam_steps: AdamW steps this client took, across rounds

Batches: local step h of a round draws B windows of T+1 tokens at rng.batch_starts(data_seed, h, ...)
with the round's data_seed from the relay (its own per client and round, so no two clients train on
the same batches). Learning rate: the session's `lr` when it sets one (constant: the relay's outer
step and the per-round restarts already shape the run), else TrainConfig's default lr with a linear
warmup over the client's first LOCAL_WARMUP_STEPS AdamW steps (counted across rounds, since the Adam
state carries over, so only a freshly started client warms up).
"""

from __future__ import annotations

from array import array

from .. import rng
from ..config import TrainConfig
from ..trainer import make_windows

LOCAL_WARMUP_STEPS = 10
F16_MAX = 65504.0  # a delta saturates here so a finite delta stays finite in f16


def session_train_config(session: dict, backend: str, gpu: str) -> TrainConfig:
    """The TrainConfig of local training, from the session config that came in join_ack."""
    model_config = dict(session["model_config"])
    lr = session.get("lr") or TrainConfig.lr
    cfg = TrainConfig(
        dataset=session["dataset"], model=session["model"], steps=int(session["max_local_steps"]),
        batch=int(session["batch"]), block_size=int(session["blocksize"]), lr=float(lr),
        warmup_steps=0 if session.get("lr") else LOCAL_WARMUP_STEPS, backend=backend, gpu=gpu,
        vocab_size=int(model_config["vocab_size"]), model_config=model_config,
    )
    return cfg.validate()


def local_lr(cfg: TrainConfig, adam_steps: int) -> float:
    """The learning rate of the client's next AdamW step (its (adam_steps + 1)-th)."""
    warm = cfg.warmup_steps
    return cfg.lr * (1.0 if warm == 0 else min(1.0, (adam_steps + 1) / warm))


def round_batch(train_tokens: array, data_seed: int, local_step: int, B: int, T: int) -> tuple[array, array]:
    """Inputs and targets (array('H') of B*T tokens each, rows (B, T)) of local step `local_step`."""
    starts = rng.batch_starts(data_seed, local_step, B, len(train_tokens), T)
    return make_windows(train_tokens, starts, T)
