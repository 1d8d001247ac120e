"""The one configuration object that flows everywhere, and the parameter layout.

Pure Python (no numpy): this module also runs in the browser under Pyodide.

Letters used for shapes across the project (defined once, here):
    B  batch size             T  context length (block size)
    C  model width (n_embd)   V  vocabulary size
    H  attention heads        D  head width = C // H
    L  layers

Parameter layout. Every host (numpy reference, GPU executors, relay, checkpoints) stores the
model as ONE flat float32 vector, the tensors below concatenated in this order, each row-major.
Weights are stored (in, out) so a linear layer is y = x @ W. There are no biases.

    wte            (V, C)     token embedding
    wpe            (T, C)     position embedding
    for each layer l:
      h{l}.ln1     (C,)       RMSNorm gain before attention (init 1)
      h{l}.qkv     (C, 3C)    query | key | value projection, columns [q | k | v]
      h{l}.proj    (C, C)     attention output projection (init 0: residual starts as identity)
      h{l}.ln2     (C,)       RMSNorm gain before the MLP (init 1)
      h{l}.fc      (C, 4C)    MLP up projection, followed by ReLU
      h{l}.fc_proj (4C, C)    MLP down projection (init 0)
    lnf            (C,)       final RMSNorm gain (init 1)
    lm_head        (C, V)     logits = rmsnorm(x) @ lm_head
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace

VOCAB_SIZE = 1024

# name -> (layers, width, heads, context); vocab is VOCAB_SIZE for all presets.
PRESETS: dict[str, tuple[int, int, int, int]] = {
    "nano": (1, 16, 4, 16),
    "tiny": (2, 64, 4, 32),
    "small": (4, 128, 4, 64),
    "medium": (6, 256, 8, 128),
    "large": (8, 512, 8, 256),
}


class ConfigError(ValueError):
    """A configuration value is invalid; the message is one line meant for a user."""


@dataclass(frozen=True)
class ModelConfig:
    n_layer: int
    n_embd: int
    n_head: int
    block_size: int
    vocab_size: int = VOCAB_SIZE
    rms_eps: float = 1e-5

    def __post_init__(self) -> None:
        for f in ("n_layer", "n_embd", "n_head", "block_size", "vocab_size"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{f} must be a positive integer, got {v!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.vocab_size > 65536:
            raise ConfigError("vocab_size must fit in uint16 tokens (<= 65536)")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """The flat layout: (name, shape) in storage order (see the module docstring)."""
        C, V, T = self.n_embd, self.vocab_size, self.block_size
        out: list[tuple[str, tuple[int, ...]]] = [("wte", (V, C)), ("wpe", (T, C))]
        for l in range(self.n_layer):
            out += [
                (f"h{l}.ln1", (C,)),
                (f"h{l}.qkv", (C, 3 * C)),
                (f"h{l}.proj", (C, C)),
                (f"h{l}.ln2", (C,)),
                (f"h{l}.fc", (C, 4 * C)),
                (f"h{l}.fc_proj", (4 * C, C)),
            ]
        out += [("lnf", (C,)), ("lm_head", (C, V))]
        return out

    def param_offsets(self) -> dict[str, tuple[int, tuple[int, ...]]]:
        """name -> (offset into the flat vector, shape)."""
        return flat_offsets(self.param_shapes())

    @property
    def param_count(self) -> int:
        return sum(numel(s) for _, s in self.param_shapes())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        extra = set(d) - known
        if extra:
            raise ConfigError(f"unknown model config keys: {sorted(extra)}")
        return cls(**d)


def preset(name: str, vocab_size: int = VOCAB_SIZE) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r} (choose from {', '.join(PRESETS)})")
    L, C, H, T = PRESETS[name]
    return ModelConfig(n_layer=L, n_embd=C, n_head=H, block_size=T, vocab_size=vocab_size)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the model shape. Saved as config.json."""

    dataset: str = "names"
    model: str = "tiny"
    steps: int = 1000
    batch: int = 8
    block_size: int = 0  # training window T; 0 = the model's full context
    lr: float = 3e-3
    min_lr_frac: float = 0.1  # final LR as a fraction of lr (linear decay)
    warmup_steps: int = 50
    decay_start_frac: float = 0.8  # warmup -> constant -> linear decay over the last 20%
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    dropout: float = 0.0  # training only: the residual branches and wte+wpe (reference/dropout.py); 0 = off
    seed: int = 1337
    eval_every: int = 100
    eval_batches: int = 8  # fixed val slice: eval_batches * batch windows of block_size
    log_every: int = 10  # loss is read back every k steps
    backend: str = "numpy"
    gpu: str = "auto"
    # the GPU step's products: "fp32", or "mixed" (f16 operands, f32 accumulation, on the GPU's matrix
    # units where Dawn offers them: gpu/coop_rules.py); everything else stays f32
    precision: str = "fp32"
    vocab_size: int = VOCAB_SIZE
    model_config: dict = field(default_factory=dict)

    def model_cfg(self) -> ModelConfig:
        """The model's shape: the preset (or explicit config). --blocksize does not change it."""
        if self.model_config:
            return ModelConfig.from_dict(self.model_config)
        return preset(self.model, self.vocab_size)

    @property
    def seq_len(self) -> int:
        """T of the training windows: --blocksize, at most the model's context (wpe rows)."""
        limit = self.model_cfg().block_size
        if self.block_size > limit:
            raise ConfigError(
                f"blocksize {self.block_size} exceeds the {self.model} model's context limit {limit}"
            )
        return self.block_size or limit

    def validate(self) -> "TrainConfig":
        for f in ("steps", "batch", "eval_every", "eval_batches", "log_every"):
            v = getattr(self, f)
            if not isinstance(v, int) or v <= 0:
                raise ConfigError(f"{f} must be a positive integer, got {v!r}")
        if not (self.lr > 0 and self.lr < 10):
            raise ConfigError(f"lr must be in (0, 10), got {self.lr!r}")
        if not (0.0 <= self.dropout < 1.0):
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not (0.0 <= self.weight_decay < 10):
            raise ConfigError(f"weight decay must be in [0, 10), got {self.weight_decay!r}")
        for f in ("beta1", "beta2", "decay_start_frac", "min_lr_frac"):
            if not (0.0 <= getattr(self, f) <= 1.0):
                raise ConfigError(f"{f} must be in [0, 1], got {getattr(self, f)!r}")
        if self.block_size < 0:
            raise ConfigError(f"blocksize must be positive, got {self.block_size}")
        if self.backend not in ("numpy", "gpu", "python"):
            raise ConfigError(f"unknown backend {self.backend!r} (numpy, gpu)")
        if self.gpu not in ("auto", "dawn", "wgpu-native"):
            raise ConfigError(f"unknown gpu engine {self.gpu!r} (auto, dawn, wgpu-native)")
        if self.precision not in ("fp32", "mixed"):
            raise ConfigError(f"unknown precision {self.precision!r} (fp32, mixed)")
        if self.precision == "mixed" and self.backend != "gpu":
            raise ConfigError("precision mixed needs --backend gpu")
        self.seq_len  # raises when over the context limit
        return self

    def to_json(self) -> str:
        d = asdict(self)
        d["resolved_model"] = self.model_cfg().to_dict()
        return json.dumps(d, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def flat_offsets(shapes: list[tuple[str, tuple[int, ...]]]) -> dict[str, tuple[int, tuple[int, ...]]]:
    """(name, shape) in storage order -> name -> (offset into the tensors concatenated row-major, shape)."""
    res, off = {}, 0
    for name, shape in shapes:
        res[name] = (off, shape)
        off += numel(shape)
    return res
