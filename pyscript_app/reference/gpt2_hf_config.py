"""Hugging Face GPT-2 `config.json` -> GPT2Config, in pure Python (no numpy): the CLI's import
(reference/gpt2_hf.py) and the inference page (which parses the files in the browser) share it."""

from __future__ import annotations

from typing import Mapping

from ..config import ConfigError
from .gpt2_config import GPT2Config


class GPT2ImportError(ConfigError):
    """The checkpoint is not a GPT-2 this reference can load (one line, for the user)."""


def config_from_hf(hf: Mapping, vocab_multiple: int = 1) -> GPT2Config:
    """A Hugging Face GPT-2 `config.json` (as a dict)  ->  GPT2Config, or GPT2ImportError when the
    model is not GPT-2 or uses an option this reference does not implement."""
    if hf.get("model_type") != "gpt2":
        raise GPT2ImportError(f"not a GPT-2 checkpoint: model_type is {hf.get('model_type')!r}")
    # options that change the math; each must have GPT-2's value (or be absent)
    wanted = {
        "activation_function": "gelu_new",
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "add_cross_attention": False,
        "tie_word_embeddings": True,
    }
    for key, value in wanted.items():
        if key in hf and hf[key] != value:
            raise GPT2ImportError(f"unsupported GPT-2 config: {key} is {hf[key]!r}, expected {value!r}")
    try:
        n_embd = hf["n_embd"]
        n_inner = hf.get("n_inner")
        if n_inner is not None and n_inner != 4 * n_embd:
            raise GPT2ImportError(f"unsupported GPT-2 config: n_inner {n_inner} is not 4 * n_embd")
        eps = hf.get("layer_norm_epsilon", 1e-5)
        if isinstance(eps, int) and not isinstance(eps, bool):
            eps = float(eps)  # an integer in JSON; GPT2Config wants a float
        return GPT2Config(
            n_layer=hf["n_layer"],
            n_embd=n_embd,
            n_head=hf["n_head"],
            n_positions=hf["n_positions"],
            vocab_size=hf["vocab_size"],
            layer_norm_epsilon=eps,
            vocab_multiple=vocab_multiple,
        )
    except KeyError as e:
        raise GPT2ImportError(f"GPT-2 config.json lacks {e.args[0]!r}") from None
    except GPT2ImportError:
        raise
    except ConfigError as e:
        raise GPT2ImportError(f"unsupported GPT-2 config: {e}") from None
