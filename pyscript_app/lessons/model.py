"""The model lesson: where a GPT's parameters are, and which parity cases check each operation's kernel.

    cfg = model_from_form("custom", {"n_layer": 2, "n_embd": 64, ...})   # or a preset name
    groups = param_groups(cfg)            # [ParamGroup]: embeddings, each layer's attention and MLP, head
    formula_terms(cfg)                    # the closed form V·C + T·C + L·(12C² + 2C) + C + C·V, term by term
    OPERATIONS                            # each operation of the forward pass and its .wgsl file
    cases_for(index, op)                  # the bench's parity cases that test that file's kernels

Every count comes from config.ModelConfig.param_shapes (the layout every host stores), so the
calculator cannot drift from the model. Pure Python: runs in the page and in the unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import PRESETS, VOCAB_SIZE, ConfigError, ModelConfig, preset
from ..gpu import registry

# The custom model's limits on the page: wider than every preset, small enough to stay a toy.
FORM_LIMITS = {"n_layer": (1, 48), "n_embd": (1, 4096), "n_head": (1, 64), "block_size": (1, 4096),
               "vocab_size": (2, 65536)}


def model_from_form(choice: str, custom: dict[str, int] | None = None) -> ModelConfig:
    """A preset by name, or "custom" with the reader's L, C, H, T, V (ConfigError: one line for the page)."""
    if choice != "custom":
        return preset(choice)
    values = dict(custom or {})
    for name, (low, high) in FORM_LIMITS.items():
        v = values.get(name)
        if not isinstance(v, int) or isinstance(v, bool):
            raise ConfigError(f"{name} must be a whole number")
        if not low <= v <= high:
            raise ConfigError(f"{name} must be between {low} and {high}, got {v}")
    return ModelConfig(**{k: values[k] for k in FORM_LIMITS})


@dataclass(frozen=True)
class ParamTensor:
    name: str
    shape: tuple[int, ...]

    @property
    def count(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass(frozen=True)
class ParamGroup:
    title: str  # what the tensors do, e.g. "layer 0: attention"
    tensors: tuple[ParamTensor, ...]

    @property
    def count(self) -> int:
        return sum(t.count for t in self.tensors)


def _group_of(name: str) -> str:
    if name == "wte":
        return "token embedding"
    if name == "wpe":
        return "position embedding"
    if name.startswith("h"):
        layer, tensor = name[1:].split(".")
        part = "attention" if tensor in ("ln1", "qkv", "proj") else "MLP"
        return f"layer {layer}: {part}"
    return "final norm" if name == "lnf" else "LM head"


def param_groups(cfg: ModelConfig) -> list[ParamGroup]:
    """The flat layout's tensors, grouped by what they do, in storage order."""
    groups: dict[str, list[ParamTensor]] = {}
    for name, shape in cfg.param_shapes():
        groups.setdefault(_group_of(name), []).append(ParamTensor(name, shape))
    return [ParamGroup(title, tuple(tensors)) for title, tensors in groups.items()]


def formula_terms(cfg: ModelConfig) -> list[tuple[str, int]]:
    """The parameter count in closed form, term by term: (formula, value); the values sum to param_count.

    A layer holds qkv C·3C + proj C·C + fc C·4C + fc_proj 4C·C = 12C² weights and two norm gains (2C)."""
    L, C, T, V = cfg.n_layer, cfg.n_embd, cfg.block_size, cfg.vocab_size
    return [("V·C (token embedding)", V * C), ("T·C (position embedding)", T * C),
            ("L·(12C² + 2C) (layers)", L * (12 * C * C + 2 * C)), ("C (final norm)", C),
            ("C·V (LM head)", C * V)]


def preset_rows() -> list[tuple[str, ModelConfig]]:
    return [(name, preset(name)) for name in PRESETS]


# -- operations and their kernels -----------------------------------------------------------------
@dataclass(frozen=True)
class Operation:
    key: str  # the page's id for the badge (data-op)
    title: str
    shader: str  # the .wgsl file under shaders/


OPERATIONS: tuple[Operation, ...] = (
    Operation("embedding", "Embeddings", "embedding.wgsl"),
    Operation("rmsnorm", "RMSNorm", "rmsnorm.wgsl"),
    Operation("attention", "Attention", "attention.wgsl"),
    Operation("matmul", "Linear layers (attention projections, MLP, LM head)", "matmul.wgsl"),
    Operation("elementwise", "ReLU and the residual add", "elementwise.wgsl"),
    Operation("crossentropy", "Softmax and the loss", "crossentropy.wgsl"),
)


def operation(key: str) -> Operation:
    for op in OPERATIONS:
        if op.key == key:
            return op
    raise KeyError(f"no operation {key!r}")


def kernels_of(shader: str) -> list[str]:
    """The registered entry points of one .wgsl file."""
    return sorted(name for name, k in registry.KERNELS.items() if k.file == shader)


def cases_for(index: dict, op: Operation) -> list[dict]:
    """The parity index's cases that test only kernels of op's shader file."""
    mine = set(kernels_of(op.shader))
    return [m for m in index["cases"] if m["kernels"] and set(m["kernels"]) <= mine]


def default_custom() -> dict[str, int]:
    """What the custom fields start with: the tiny preset."""
    L, C, H, T = PRESETS["tiny"]
    return {"n_layer": L, "n_embd": C, "n_head": H, "block_size": T, "vocab_size": VOCAB_SIZE}
