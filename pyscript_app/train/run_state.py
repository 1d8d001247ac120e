"""A training run's state as the CLI and the playground save it: pure Python (runs in the browser).

    cfg = make_train_config(dataset="names", model="nano", steps=50, batch=8)
    blob = checkpoint_bytes(cfg, tokenizer, await backend.export(), meta={"backend": ...})
    run = read_checkpoint(blob)          # RunState; CheckpointError (one line) when unreadable
    run.check_model(cfg.model_cfg())     # CheckpointError when it holds another model

The file format is checkpoint.py's (`.tgpt`); the header built here is the one `tabgpt sample`
reads: train_config, model_config, step, the tokenizer's JSON (so a checkpoint is self-contained),
meta. One module for both hosts, so a checkpoint downloaded from the browser loads in the CLI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from . import checkpoint
from ..data.bpe import Tokenizer, TokenizerError
from .checkpoint import CheckpointError
from ..config import ConfigError, ModelConfig, TrainConfig

MAX_WARMUP_STEPS = 50


def warmup_steps_for(steps: int) -> int:
    """Linear warmup over 10% of a short run, at most MAX_WARMUP_STEPS (the CLI's rule)."""
    return min(MAX_WARMUP_STEPS, max(1, steps // 10))


def make_train_config(*, dataset: str, model: str, steps: int, batch: int, block_size: int = 0,
                      lr: float = 3e-3, seed: int = 1337, backend: str = "numpy", gpu: str = "auto",
                      eval_every: int = 100, log_every: int = 10) -> TrainConfig:
    """The TrainConfig of a run, validated (ConfigError with one readable line otherwise)."""
    if not isinstance(steps, int) or steps <= 0:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    cfg = TrainConfig(
        dataset=dataset, model=model, steps=steps, batch=batch, block_size=block_size, lr=lr, seed=seed,
        backend=backend, gpu=gpu, eval_every=min(eval_every, steps), log_every=log_every,
        warmup_steps=warmup_steps_for(steps),
    )
    return cfg.validate()


def checkpoint_header(cfg: TrainConfig, tokenizer: Tokenizer, step: int, meta: dict | None = None) -> dict:
    """The JSON header of a checkpoint (checkpoint.py adds the array table)."""
    return {
        "train_config": json.loads(cfg.to_json()),
        "model_config": cfg.model_cfg().to_dict(),
        "step": int(step),
        "tokenizer": json.loads(tokenizer.to_json()),
        "meta": dict(meta or {}),
    }


def checkpoint_bytes(cfg: TrainConfig, tokenizer: Tokenizer, state: dict, meta: dict | None = None) -> bytes:
    """A whole resumable checkpoint from Backend.export()'s {'params', 'adam_m', 'adam_v', 'step'}."""
    header = checkpoint_header(cfg, tokenizer, state["step"], meta)
    arrays = {name: state[name] for name in ("params", "adam_m", "adam_v") if state.get(name) is not None}
    return checkpoint.encode(header, arrays)


@dataclass(frozen=True)
class RunState:
    """A decoded checkpoint: everything needed to sample from it or to resume its run."""

    header: dict
    arrays: dict  # name -> float32 LE bytes views: params, and adam_m / adam_v when resumable
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    tokenizer: Tokenizer
    step: int

    @property
    def resumable(self) -> bool:
        return "adam_m" in self.arrays and "adam_v" in self.arrays

    def check_model(self, expected: ModelConfig, expected_name: str = "") -> None:
        """CheckpointError (readable) unless this checkpoint holds a model of shape `expected`."""
        if self.model_cfg != expected:
            got = describe_model(self.model_cfg, self.train_cfg.model)
            want = describe_model(expected, expected_name)
            raise CheckpointError(f"this checkpoint holds {got}, not {want}")


def describe_model(mc: ModelConfig, name: str = "") -> str:
    shape = f"L={mc.n_layer} C={mc.n_embd} H={mc.n_head} T={mc.block_size} V={mc.vocab_size}"
    return f"a {name} model ({shape})" if name else f"a model with {shape}"


def read_checkpoint(blob: bytes) -> RunState:
    """Decode and check a checkpoint (untrusted bytes: every field is validated)."""
    header, arrays = checkpoint.decode(blob)
    if header.get("family") == "gpt2":
        raise CheckpointError("an imported GPT-2 checkpoint: `tabgpt sample` generates from it; it cannot train or resume")
    try:
        mc = ModelConfig.from_dict(header["model_config"])
        tok = Tokenizer.from_json(json.dumps(header["tokenizer"]))
        train = header.get("train_config") or {}
        if not isinstance(train, dict):
            raise CheckpointError("checkpoint train_config is not an object")
        # the model shape is the checkpoint's own, whatever preset name the config carries
        cfg = TrainConfig.from_dict({**train, "model_config": mc.to_dict(), "vocab_size": mc.vocab_size})
        step = header["step"]
    except KeyError as e:
        raise CheckpointError(f"checkpoint header lacks {e}") from None
    except (TypeError, ConfigError, TokenizerError) as e:
        raise CheckpointError(f"checkpoint header is invalid: {e}") from None
    if not isinstance(step, int) or step < 0:
        raise CheckpointError(f"checkpoint step must be a non-negative integer, got {step!r}")
    if tok.vocab_size != mc.vocab_size:
        raise CheckpointError(f"checkpoint tokenizer has {tok.vocab_size} tokens, the model {mc.vocab_size}")
    if "params" not in arrays:
        raise CheckpointError("checkpoint has no params array")
    for name, view in arrays.items():
        if len(view) != 4 * mc.param_count:
            raise CheckpointError(f"checkpoint array {name!r} has {len(view) // 4} values, "
                                  f"the model has {mc.param_count} parameters")
    return RunState(header, arrays, mc, cfg, tok, step)
