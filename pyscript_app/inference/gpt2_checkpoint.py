"""An imported GPT-2 as a tabgpt checkpoint: `tabgpt import` writes it, `tabgpt sample` and the site
read it.

DIR/checkpoint.tgpt is train/checkpoint.py's container:
    header  {"family": "gpt2",
             "model_config": GPT2Config.to_dict() (vocab_multiple 1: stored exactly as the model is),
             "tokenizer": {"type": "gpt2-bpe", "vocab_json": str, "merges_txt": str, "sha256": str},
             "source": {"folder": str, "dtype": "f32" | "f16"}, "step": 0}
    arrays  "params": the flat parameter vector in GPT2Config.param_offsets order ((in, out) weights,
            as GPT-2's Conv1D stores them), f32, or f16 with `--dtype f16` (half the file; the
            numbers are f16-rounded and computed in f32 when read)
DIR/config.json repeats the header's model_config for people and tools.

Everything is checked before anything is written, and the folder appears whole or not at all (it
is written beside its final name, then renamed): bad input leaves no trace.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import ConfigError
from ..data.gpt2_tokenizer import FILE_NAMES, GPT2Tokenizer
from ..reference.gpt2_config import GPT2Config
from ..reference.gpt2_hf import GPT2ImportError, load_hf_folder
from ..train import checkpoint

FAMILY = "gpt2"
DTYPES = {"f32": "<f4", "f16": "<f2"}  # how "params" is stored (little-endian)
F16_MAX = float(np.finfo(np.float16).max)


def f16_overflow(params) -> str | None:
    """The first tensor of `params` (name -> array) that f16 weights on the GPU would narrow
    (gpu/gpt2_weights.stored_narrow) and that holds a value beyond f16's range; None if none does."""
    from ..gpu.gpt2_weights import stored_narrow

    for name, t in params.items():
        if stored_narrow(name) and np.abs(t).max(initial=0.0) > F16_MAX:
            return name
    return None


@dataclass
class ImportedGPT2:
    cfg: GPT2Config
    params: dict[str, np.ndarray]  # name -> f32 array, GPT2Config.param_shapes order
    tokenizer: GPT2Tokenizer
    header: dict


def _tokenizer_texts(folder: Path) -> tuple[str, str]:
    for vocab_name, merges_name in FILE_NAMES:
        if (folder / vocab_name).is_file() and (folder / merges_name).is_file():
            try:
                return ((folder / vocab_name).read_text(encoding="utf-8"),
                        (folder / merges_name).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as e:
                raise GPT2ImportError(f"{folder}: unreadable tokenizer files ({type(e).__name__})") from None
    names = " or ".join(" + ".join(pair) for pair in FILE_NAMES)
    raise GPT2ImportError(f"{folder}: no tokenizer files ({names})")


def _tokenizer(vocab_json: str, merges_txt: str, where: str) -> GPT2Tokenizer:
    try:
        return GPT2Tokenizer.from_text(vocab_json, merges_txt)
    except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
        raise GPT2ImportError(f"{where}: the tokenizer files are invalid ({str(e)[:120]})") from None


def convert(folder: str | os.PathLike, dtype: str = "f32") -> tuple[dict, bytes, GPT2Config]:
    """A Hugging Face GPT-2 folder -> (checkpoint header, params bytes, config), all checked."""
    if dtype not in DTYPES:
        raise GPT2ImportError(f"unknown dtype {dtype!r} (f32 or f16)")
    folder = Path(folder)
    if not folder.is_dir():
        raise GPT2ImportError(f"{folder}: not a folder (give a Hugging Face GPT-2 checkpoint folder)")
    vocab_json, merges_txt = _tokenizer_texts(folder)
    tok = _tokenizer(vocab_json, merges_txt, str(folder))
    cfg, params = load_hf_folder(folder, vocab_multiple=1, dtype=np.float32)
    if tok.vocab_size != cfg.vocab_size:
        raise GPT2ImportError(f"{folder}: the tokenizer has {tok.vocab_size} tokens, the model {cfg.vocab_size}")
    flat = np.concatenate([params[name].reshape(-1) for name, _ in cfg.param_shapes()])  # (P,) f32
    if dtype == "f16" and np.abs(flat).max(initial=0.0) > F16_MAX:
        raise GPT2ImportError(f"{folder}: weights beyond f16's range ({F16_MAX:g}); import with --dtype f32")
    data = flat.astype(DTYPES[dtype]).tobytes()
    header = {
        "family": FAMILY,
        "model_config": cfg.to_dict(),
        "tokenizer": {"type": "gpt2-bpe", "vocab_json": vocab_json, "merges_txt": merges_txt,
                      "sha256": hashlib.sha256((vocab_json + "\0" + merges_txt).encode()).hexdigest()},
        "source": {"folder": folder.name, "dtype": dtype},
        "step": 0,
    }
    return header, data, cfg


def write(out: str | os.PathLike, header: dict, data: bytes, dtype: str) -> Path:
    """Write DIR/checkpoint.tgpt and DIR/config.json; the folder appears whole (a sibling temporary
    folder renamed into place). An existing non-empty DIR is refused, never overwritten."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GPT2ImportError(f"{out} already exists and is not an empty folder; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        checkpoint.save(tmp / checkpoint.FILENAME, header, {"params": data}, {"params": dtype})
        (tmp / "config.json").write_text(json.dumps(header["model_config"], indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def is_gpt2(header: dict) -> bool:
    return header.get("family") == FAMILY


def read(path: str | os.PathLike) -> ImportedGPT2:
    """An imported GPT-2 checkpoint (a folder or its .tgpt file) -> config, f32 params, tokenizer."""
    header, arrays = checkpoint.load(path)
    return from_decoded(header, arrays)


def from_decoded(header: dict, arrays: dict) -> ImportedGPT2:
    if not is_gpt2(header):
        raise checkpoint.CheckpointError("not an imported GPT-2 checkpoint")
    try:
        cfg = GPT2Config.from_dict(header["model_config"])
        tok_header = header["tokenizer"]
        tok = _tokenizer(tok_header["vocab_json"], tok_header["merges_txt"], "checkpoint")
    except (KeyError, TypeError, ConfigError) as e:
        raise checkpoint.CheckpointError(f"GPT-2 checkpoint header is invalid: {e}") from None
    if "params" not in arrays:
        raise checkpoint.CheckpointError("checkpoint has no params array")
    dtype = checkpoint.array_dtype(header, "params")
    flat = np.frombuffer(arrays["params"], dtype=DTYPES[dtype]).astype(np.float32)  # (P,)
    if flat.size != cfg.param_count:
        raise checkpoint.CheckpointError(f"checkpoint has {flat.size} values, the model {cfg.param_count} parameters")
    params = {name: flat[off: off + int(np.prod(shape))].reshape(shape)
              for name, (off, shape) in cfg.param_offsets().items()}
    return ImportedGPT2(cfg, params, tok, header)
