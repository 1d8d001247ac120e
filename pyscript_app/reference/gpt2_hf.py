"""Hugging Face GPT-2 checkpoints -> the reference's GPT2Config and parameter dict.

A folder written by `GPT2LMHeadModel.save_pretrained` holds `config.json` and `model.safetensors`.
Its tensor names are ours with a `transformer.` prefix (gpt2_config.py lists them). GPT-2's
linear layers are Conv1D modules, which store their weight as (in, out) — transposed relative to
torch.nn.Linear's (out, in) — and that is exactly our y = x @ W + b layout, so weights are taken
as they are; a weight stored the Linear way shows up as a shape mismatch (except the square
attn.c_proj, which no shape can tell).

Tolerated extras: `lm_head.weight` (older savers write the tied head out; it must equal wte) and
the attention-mask buffers `h.{i}.attn.bias` / `h.{i}.attn.masked_bias` of old checkpoints.
Everything else — another model type, a config we cannot honour, a missing / unexpected /
misshapen / non-finite tensor, an unreadable or truncated file — raises GPT2ImportError with a
one-line message. It subclasses config.ConfigError, so the CLI reports it as bad input (exit 2).

The mapping functions take plain dicts of numpy arrays; only load_hf_folder needs the
`safetensors` package (imported when called).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from .gpt2_config import GPT2Config
from .gpt2_hf_config import GPT2ImportError, config_from_hf  # noqa: F401  (re-exported)

_BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")


def params_from_hf(
    cfg: GPT2Config, state: Mapping[str, np.ndarray], dtype=np.float32
) -> dict[str, np.ndarray]:
    """A GPT-2 state dict (name -> numpy array, with or without the `transformer.` prefix)  ->
    our parameter dict in `dtype`, in layout order, wte padded with zero rows to cfg.padded_vocab."""
    shapes = dict(cfg.param_shapes())
    shapes["wte.weight"] = (cfg.vocab_size, cfg.n_embd)  # as stored: unpadded
    found: dict[str, np.ndarray] = {}
    head = None
    for key, tensor in state.items():
        name = key.removeprefix("transformer.")
        if name == "lm_head.weight":
            head = tensor
        elif _BUFFER.fullmatch(name):
            continue  # the causal mask, stored as a buffer by old transformers versions
        elif name not in shapes:
            raise GPT2ImportError(f"unexpected tensor {key!r} in a GPT-2 checkpoint")
        else:
            found[name] = tensor
    missing = [n for n in shapes if n not in found]
    if missing:
        raise GPT2ImportError(f"GPT-2 checkpoint lacks {len(missing)} tensor(s), first {missing[0]!r}")

    out: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        t = np.asarray(found[name])
        if t.shape != shape:
            raise GPT2ImportError(f"tensor {name!r} has shape {t.shape}, expected {shape}")
        if not np.issubdtype(t.dtype, np.floating):
            raise GPT2ImportError(f"tensor {name!r} has dtype {t.dtype}, expected a float type")
        if not np.isfinite(t).all():
            raise GPT2ImportError(f"tensor {name!r} holds NaN or infinity")
        out[name] = t.astype(dtype)  # a copy even when already dtype: the caller owns it
    if head is not None and not np.array_equal(head, found["wte.weight"]):  # (shapes differ: unequal)
        raise GPT2ImportError("lm_head.weight differs from wte.weight: an untied head is not GPT-2")

    wte = np.zeros((cfg.padded_vocab, cfg.n_embd), dtype=dtype)  # (Vp,C), padding rows 0
    wte[: cfg.vocab_size] = out["wte.weight"]
    out["wte.weight"] = wte
    return {name: out[name] for name, _ in cfg.param_shapes()}


def load_hf_folder(
    folder: str | Path, vocab_multiple: int = 1, dtype=np.float32
) -> tuple[GPT2Config, dict[str, np.ndarray]]:
    """A `save_pretrained` folder (config.json + model.safetensors)  ->  (GPT2Config, params)."""
    folder = Path(folder)
    try:
        hf = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GPT2ImportError(f"{folder}: no config.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GPT2ImportError(f"{folder / 'config.json'}: unreadable ({type(e).__name__})") from None
    if not isinstance(hf, dict):
        raise GPT2ImportError(f"{folder / 'config.json'}: not a JSON object")
    cfg = config_from_hf(hf, vocab_multiple)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise GPT2ImportError(f"{folder}: no model.safetensors")
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, TypeError) as e:  # TypeError: bf16, which numpy lacks
        first_line = (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise GPT2ImportError(f"{weights}: unreadable safetensors file ({first_line})") from None
    return cfg, params_from_hf(cfg, state, dtype)
