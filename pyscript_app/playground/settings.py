"""The playground's form, parsed and checked: strings from the page in, a TrainConfig out.

    s = parse_settings({"dataset": "names", "model": "nano", "steps": "50", ...})
    s.train_config()      # the run's TrainConfig (backend "gpu")
    s.run_key(data_id)    # names the run's OPFS checkpoint: same settings + same data -> same key

Every bad value raises InputError with one line a user can act on; nothing else changes.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

from ..config import PRESETS, ConfigError, TrainConfig, preset
from ..train.run_state import make_train_config

DATASETS = ("names", "shakespeare", "custom")
MAX_STEPS = 100_000
MAX_BATCH = 256
MAX_TOP_K = 1024
MAX_SAMPLES = 20
EVAL_POINTS = 5  # evaluations per run (for the val curve), at least every LOG_EVERY steps
LOG_EVERY = 10  # the loss is read back every LOG_EVERY steps (the only per-step readback)

DEFAULTS = {
    "dataset": "names", "model": "nano", "steps": "200", "batch": "8", "context": "", "lr": "0.003",
    "seed": "1337", "checkpoint_every": "50", "prompt": "", "temperature": "0.8", "top_k": "0",
    "samples": "5",
}


# the settings that decide a run's losses; the run key names a checkpoint by these and the data
TRAJECTORY_FIELDS = ("dataset", "model", "steps", "batch", "context", "lr", "seed")


class InputError(ValueError):
    """A form value is unusable; the message is one line for the page's status."""


@dataclass(frozen=True)
class Settings:
    dataset: str
    model: str
    steps: int
    batch: int
    context: int  # training window T; 0 = the preset's whole context
    lr: float
    seed: int
    checkpoint_every: int
    prompt: str
    temperature: float
    top_k: int
    samples: int  # drawn when a run ends (each token is a GPU round trip: slow on a CPU adapter)

    def train_config(self) -> TrainConfig:
        eval_every = max(LOG_EVERY, self.steps // EVAL_POINTS)
        try:
            return make_train_config(
                dataset=self.dataset, model=self.model, steps=self.steps, batch=self.batch,
                block_size=self.context, lr=self.lr, seed=self.seed, backend="gpu",
                eval_every=eval_every, log_every=LOG_EVERY)
        except ConfigError as e:
            raise InputError(str(e)) from None

    def run_key(self, data_id: str) -> str:
        """16 hex digits naming this run: what decides its trajectory (not checkpointing or sampling)
        and the data's identity."""
        training = {k: v for k, v in asdict(self).items() if k in TRAJECTORY_FIELDS}
        blob = json.dumps({"settings": training, "data": data_id}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _integer(form: dict, name: str, label: str, lo: int, hi: int) -> int:
    raw = str(form.get(name, DEFAULTS.get(name, ""))).strip()
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{label} must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise InputError(f"{label} must be between {lo} and {hi}, got {value}")
    return value


def _number(form: dict, name: str, label: str, lo: float, hi: float, *, open_low: bool = False) -> float:
    raw = str(form.get(name, DEFAULTS.get(name, ""))).strip()
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"{label} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value > hi or value < lo or (open_low and value == lo):
        low = f"above {lo:g}" if open_low else f"at least {lo:g}"
        raise InputError(f"{label} must be {low} and at most {hi:g}, got {raw}")
    return value


def _choice(form: dict, name: str, label: str, choices) -> str:
    value = str(form.get(name, DEFAULTS[name])).strip()
    if value not in choices:
        raise InputError(f"unknown {label} {value!r} (choose {', '.join(choices)})")
    return value


def parse_settings(form: dict) -> Settings:
    """Settings from the form's string values (missing keys take DEFAULTS); InputError if unusable."""
    model = _choice(form, "model", "model", tuple(PRESETS))
    limit = preset(model).block_size
    context_raw = str(form.get("context", "")).strip()
    context = 0 if context_raw in ("", "0") else _integer(form, "context", "context", 1, 1 << 30)
    if context > limit:
        raise InputError(f"context {context} is over the {model} model's limit of {limit} tokens")
    settings = Settings(
        dataset=_choice(form, "dataset", "dataset", DATASETS),
        model=model,
        steps=_integer(form, "steps", "steps", 1, MAX_STEPS),
        batch=_integer(form, "batch", "batch", 1, MAX_BATCH),
        context=context,
        lr=_number(form, "lr", "learning rate", 0.0, 1.0, open_low=True),
        seed=_integer(form, "seed", "seed", 0, 2**32 - 1),
        checkpoint_every=_integer(form, "checkpoint_every", "checkpoint every", 1, MAX_STEPS),
        prompt=str(form.get("prompt", ""))[:1000],
        temperature=_number(form, "temperature", "temperature", 0.0, 10.0),
        top_k=_integer(form, "top_k", "top-k", 0, MAX_TOP_K),
        samples=_integer(form, "samples", "samples", 0, MAX_SAMPLES),
    )
    settings.train_config()  # anything TrainConfig itself refuses, as an InputError
    return settings
