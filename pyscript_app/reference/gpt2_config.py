"""The GPT-2 model family's shape and parameter layout, beside our own ModelConfig (config.py).

Pure Python (no numpy): like config.py, this module runs in the browser under Pyodide. Our presets
(RMSNorm, ReLU, no biases, untied head) keep using ModelConfig unchanged; a GPT2Config says "this
is a GPT-2": LayerNorm with weight and bias, a bias on every linear layer, GELU (tanh
approximation), learned positions, a final LayerNorm and an LM head tied to the token embedding.

Letters as in config.py: V vocab (real, 50,257 for OpenAI's models), Vp the padded vocab (V rounded
up to `vocab_multiple`, for kernels that want whole tiles), P = n_positions (<= 1024), C width,
H heads, D = C // H, L layers.

Parameter layout. Names are Hugging Face's GPT2LMHeadModel state-dict names without the
`transformer.` prefix, in the order of that state dict. Linear weights are stored (in, out) so a
layer is y = x @ W + b: that is already how GPT-2's Conv1D stores them, so no transpose is needed
on import (nn.Linear would store (out, in)).

    wte.weight                (Vp, C)   token embedding; also the LM head (logits = x @ wte[:V].T)
    wpe.weight                (P, C)    position embedding
    for each layer i:
      h.{i}.ln_1.weight       (C,)      LayerNorm before attention: gain ...
      h.{i}.ln_1.bias         (C,)      ... and shift
      h.{i}.attn.c_attn.weight (C, 3C)  query | key | value projection, columns [q | k | v],
      h.{i}.attn.c_attn.bias  (3C,)       head h at columns h*D:(h+1)*D of each third
      h.{i}.attn.c_proj.weight (C, C)   attention output projection
      h.{i}.attn.c_proj.bias  (C,)
      h.{i}.ln_2.weight       (C,)      LayerNorm before the MLP
      h.{i}.ln_2.bias         (C,)
      h.{i}.mlp.c_fc.weight   (C, 4C)   MLP up projection, followed by GELU
      h.{i}.mlp.c_fc.bias     (4C,)
      h.{i}.mlp.c_proj.weight (4C, C)   MLP down projection
      h.{i}.mlp.c_proj.bias   (C,)
    ln_f.weight               (C,)      final LayerNorm
    ln_f.bias                 (C,)

Rows V..Vp-1 of wte are padding: zero on import, never read as a token, never a logit (the head
computes logits for the real vocabulary only), so they never reach a probability and get zero
gradient.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..config import ConfigError, flat_offsets, numel

GPT2_VOCAB_SIZE = 50257
GPT2_MAX_POSITIONS = 1024

# OpenAI's released sizes (layers, width, heads); all have vocab 50,257 and 1,024 positions.
GPT2_SIZES: dict[str, tuple[int, int, int]] = {
    "gpt2": (12, 768, 12),  # 124M
    "gpt2-medium": (24, 1024, 16),  # 350M
    "gpt2-large": (36, 1280, 20),  # 774M
    "gpt2-xl": (48, 1600, 25),  # 1558M
}


@dataclass(frozen=True)
class GPT2Config:
    n_layer: int
    n_embd: int
    n_head: int
    n_positions: int = GPT2_MAX_POSITIONS
    vocab_size: int = GPT2_VOCAB_SIZE
    layer_norm_epsilon: float = 1e-5
    vocab_multiple: int = 1  # pad wte's rows to a multiple of this (1 = no padding)

    family = "gpt2"  # class attribute, not a field: what a saved config.json says the model is

    def __post_init__(self) -> None:
        for f in ("n_layer", "n_embd", "n_head", "n_positions", "vocab_size", "vocab_multiple"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{f} must be a positive integer, got {v!r}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.n_positions > GPT2_MAX_POSITIONS:
            raise ConfigError(f"n_positions {self.n_positions} exceeds GPT-2's {GPT2_MAX_POSITIONS}")
        if not (isinstance(self.layer_norm_epsilon, float) and 0 < self.layer_norm_epsilon < 1):
            raise ConfigError(
                f"layer_norm_epsilon must be a float in (0, 1), got {self.layer_norm_epsilon!r}"
            )

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def block_size(self) -> int:
        """The longest context (= n_positions): the name the sampler and KVCache use."""
        return self.n_positions

    @property
    def padded_vocab(self) -> int:
        """Vp: rows of wte, V rounded up to a multiple of vocab_multiple."""
        m = self.vocab_multiple
        return (self.vocab_size + m - 1) // m * m

    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """The layout: (name, shape) in storage order (see the module docstring)."""
        C, P = self.n_embd, self.n_positions
        out: list[tuple[str, tuple[int, ...]]] = [
            ("wte.weight", (self.padded_vocab, C)),
            ("wpe.weight", (P, C)),
        ]
        for i in range(self.n_layer):
            h = f"h.{i}."
            out += [
                (h + "ln_1.weight", (C,)),
                (h + "ln_1.bias", (C,)),
                (h + "attn.c_attn.weight", (C, 3 * C)),
                (h + "attn.c_attn.bias", (3 * C,)),
                (h + "attn.c_proj.weight", (C, C)),
                (h + "attn.c_proj.bias", (C,)),
                (h + "ln_2.weight", (C,)),
                (h + "ln_2.bias", (C,)),
                (h + "mlp.c_fc.weight", (C, 4 * C)),
                (h + "mlp.c_fc.bias", (4 * C,)),
                (h + "mlp.c_proj.weight", (4 * C, C)),
                (h + "mlp.c_proj.bias", (C,)),
            ]
        out += [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
        return out

    def param_offsets(self) -> dict[str, tuple[int, tuple[int, ...]]]:
        """name -> (offset into a flat vector of the tensors above, concatenated row-major; shape)."""
        return flat_offsets(self.param_shapes())

    @property
    def param_count(self) -> int:
        """Stored parameters, padding rows included."""
        return sum(numel(s) for _, s in self.param_shapes())

    @property
    def real_param_count(self) -> int:
        """The model's parameters without padding (124,439,808 for the 124M GPT-2)."""
        return self.param_count - (self.padded_vocab - self.vocab_size) * self.n_embd

    def to_dict(self) -> dict:
        return {"family": self.family, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "GPT2Config":
        d = dict(d)
        family = d.pop("family", cls.family)
        if family != cls.family:
            raise ConfigError(f"model family is {family!r}, expected {cls.family!r}")
        known = {f.name for f in fields(cls)}
        extra = set(d) - known
        if extra:
            raise ConfigError(f"unknown GPT-2 config keys: {sorted(extra)}")
        return cls(**d)


def gpt2_size(name: str, **overrides) -> GPT2Config:
    """One of OpenAI's released shapes by name (`gpt2`, `gpt2-medium`, ...), e.g. for benchmarks."""
    if name not in GPT2_SIZES:
        raise ConfigError(f"unknown GPT-2 size {name!r} (choose from {', '.join(GPT2_SIZES)})")
    L, C, H = GPT2_SIZES[name]
    return GPT2Config(n_layer=L, n_embd=C, n_head=H, **overrides)
