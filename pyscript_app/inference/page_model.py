"""The inference page's model files, understood from their headers alone: which model, which tensor lies
where in which file, in which dtype. The weights themselves never pass through Python: the page streams
each tensor from its file into its GPU buffer in chunks (browser/weight_upload.js), so the wasm heap
never holds a copy of the model. Pure Python (runs in Pyodide and on CPython; tests feed it bytes).

What the page accepts (one or more files from one file input):
  - a tabgpt checkpoint (`.tgpt`, train/checkpoint.py's container):
      an imported GPT-2 (`tabgpt import`, header family "gpt2", one flat "params" array, f32 or f16)
      -> Gpt2Source; one of our own models (the playground's download, `tabgpt train`) -> OwnSource;
  - Hugging Face GPT-2 files: config.json + model.safetensors (F32, F16 or BF16 tensors; Conv1D weights
    are (in, out), our layout), and optionally vocab.json + merges.txt (or encoder.json + vocab.bpe);
    without them the site's copy of GPT-2's tokenizer is used -> Gpt2Source.
Anything else raises ModelFileError with one line for the page's status. Unlike `tabgpt import`, the
page does not read the weights to check them (finiteness, a tied lm_head equal to wte): that would mean
reading the whole file twice.

    files = [f1, f2, ...]        # each: .name, .size, async .read(start, end) -> bytes
    source = await inspect(files)
    check_fits(source, max_binding_bytes, dtype)   # ModelFileError when a tensor exceeds the adapter's limit
    for t in source.tensors: for row0, rows in writer.chunks(t.name): file_range(t, M, row0, rows) ...
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..config import ConfigError, numel
from ..data.gpt2_tokenizer import FILE_NAMES
from ..gpu.gpt2_weights import stored_narrow
from ..reference.gpt2_config import GPT2Config
from ..reference.gpt2_hf_config import config_from_hf
from ..train import checkpoint

MAX_SAFETENSORS_HEADER = 100 << 20  # the safetensors format's own limit
MAX_SMALL_FILE = 16 << 20  # config.json, vocab.json, merges.txt
SOURCE_BYTES = {"f32": 4, "f16": 2, "bf16": 2}
SAFETENSORS_DTYPES = {"F32": "f32", "F16": "f16", "BF16": "bf16"}
WHAT_TO_GIVE = ("choose a tabgpt checkpoint (.tgpt, e.g. from `tabgpt import`) or a Hugging Face GPT-2's "
                "config.json + model.safetensors (with vocab.json + merges.txt if you have them)")


class ModelFileError(ValueError):
    """The files are not a model the page can run (one line, for the status)."""


class FileLike(Protocol):
    name: str
    size: int

    async def read(self, start: int, end: int) -> bytes: ...


@dataclass(frozen=True)
class TensorSource:
    """One parameter tensor: `count` values of `dtype` at byte `offset` of file `file`."""

    name: str
    file: str
    offset: int
    count: int
    dtype: str  # f32 | f16 | bf16 (widened to f32 on the way to the GPU)

    @property
    def nbytes(self) -> int:
        return self.count * SOURCE_BYTES[self.dtype]

    def gpu_bytes(self, dtype: str = "f32") -> int:
        """Its bytes on the GPU with weights of `dtype` (gpu/gpt2_weights.py narrows wte and the products')."""
        return self.count * (2 if dtype == "f16" and stored_narrow(self.name) else 4)


@dataclass
class Gpt2Source:
    cfg: GPT2Config
    tensors: list[TensorSource]  # cfg.param_shapes() order
    tokenizer: tuple[str, str] | None  # (vocab json, merges) texts; None: the site's GPT-2 files
    kind: str  # what the status says, e.g. "tabgpt checkpoint (f16)"
    files: list[str] = field(default_factory=list)

    def gpu_bytes(self, dtype: str = "f32") -> int:
        return sum(t.gpu_bytes(dtype) for t in self.tensors)


@dataclass
class OwnSource:
    """A checkpoint of tabgpt's own model family: small, read whole (train/run_state.read_checkpoint)."""

    file: str
    size: int


def _by_name(files: Sequence[FileLike]) -> dict[str, FileLike]:
    out: dict[str, FileLike] = {}
    for f in files:
        if f.name in out:
            raise ModelFileError(f"two files are named {f.name}")
        out[f.name] = f
    return out


async def _read_exact(f: FileLike, start: int, end: int) -> bytes:
    data = await f.read(start, end)
    if len(data) != end - start:
        raise ModelFileError(f"{f.name}: could not read bytes {start}..{end}")
    return bytes(data)


async def _small_text(f: FileLike) -> str:
    if f.size > MAX_SMALL_FILE:
        raise ModelFileError(f"{f.name}: {f.size:,} bytes is too large for this kind of file")
    try:
        return (await _read_exact(f, 0, f.size)).decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(f"{f.name}: not UTF-8 text") from None


async def inspect(files: Sequence[FileLike]) -> Gpt2Source | OwnSource:
    """What the chosen files hold (reads only headers, config and tokenizer files)."""
    if not files:
        raise ModelFileError(f"no file chosen: {WHAT_TO_GIVE}")
    named = _by_name(files)
    if "config.json" in named:
        return await _inspect_hf(named)
    checkpoints = [f for f in files if f.name.endswith(".tgpt")]
    if not checkpoints and len(files) == 1 and files[0].size >= 4:
        if await _read_exact(files[0], 0, 4) == checkpoint.MAGIC:
            checkpoints = [files[0]]
    if len(checkpoints) == 1 and len(files) == 1:
        return await _inspect_checkpoint(checkpoints[0])
    if checkpoints:
        raise ModelFileError("choose one .tgpt checkpoint on its own")
    if any(f.name.endswith(".safetensors") for f in files):
        raise ModelFileError("model.safetensors needs its config.json: choose both (and the tokenizer files)")
    names = ", ".join(sorted(named))[:120]
    raise ModelFileError(f"{names}: not a model this page can run; {WHAT_TO_GIVE}")


# -- tabgpt checkpoints ----------------------------------------------------------------------------
async def _inspect_checkpoint(f: FileLike) -> Gpt2Source | OwnSource:
    if f.size < 12 or await _read_exact(f, 0, 4) != checkpoint.MAGIC:
        raise ModelFileError(f"{f.name}: not a tabgpt checkpoint (bad magic)")
    version, hlen = struct.unpack("<II", await _read_exact(f, 4, 12))
    if version != checkpoint.VERSION:
        raise ModelFileError(f"{f.name}: unsupported checkpoint version {version}")
    if hlen > checkpoint.MAX_HEADER or 12 + hlen > f.size:
        raise ModelFileError(f"{f.name}: the checkpoint header is truncated")
    try:
        header = json.loads((await _read_exact(f, 12, 12 + hlen)).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelFileError(f"{f.name}: the checkpoint header is not valid JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays"), list):
        raise ModelFileError(f"{f.name}: the checkpoint header lacks its array table")
    offsets, at = {}, 12 + hlen
    for entry in header["arrays"]:
        entry = entry if isinstance(entry, dict) else {}
        name, count, dtype = entry.get("name"), entry.get("count"), entry.get("dtype", "f32")
        if not isinstance(name, str) or not isinstance(count, int) or count < 0 or dtype not in ("f32", "f16"):
            raise ModelFileError(f"{f.name}: the checkpoint's array table is malformed")
        offsets[name] = (at, count, dtype)
        at += count * SOURCE_BYTES[dtype]
    if at > f.size:
        raise ModelFileError(f"{f.name}: the file is truncated ({f.size:,} of {at:,} bytes)")
    if at < f.size:
        raise ModelFileError(f"{f.name}: the checkpoint has trailing bytes")
    if header.get("family") != "gpt2":
        if "model_config" in header and "train_config" in header:
            return OwnSource(f.name, f.size)
        raise ModelFileError(f"{f.name}: a tabgpt checkpoint of an unknown model family {header.get('family')!r}")
    try:
        cfg = GPT2Config.from_dict(header["model_config"])
        tok = header["tokenizer"]
        texts = (tok["vocab_json"], tok["merges_txt"])
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("tokenizer texts are not strings")
    except (KeyError, TypeError, ValueError) as e:  # ConfigError is a ValueError
        raise ModelFileError(f"{f.name}: the GPT-2 checkpoint's header is invalid ({e})") from None
    if "params" not in offsets:
        raise ModelFileError(f"{f.name}: the checkpoint has no params array")
    start, count, dtype = offsets["params"]
    if count != cfg.param_count:
        raise ModelFileError(f"{f.name}: {count:,} values, but the model has {cfg.param_count:,} parameters")
    width = SOURCE_BYTES[dtype]
    tensors = [TensorSource(name, f.name, start + off * width, numel(shape), dtype)
               for name, (off, shape) in cfg.param_offsets().items()]
    return Gpt2Source(cfg, tensors, texts, f"tabgpt checkpoint ({dtype})", [f.name])


# -- Hugging Face files ----------------------------------------------------------------------------
_SKIPPED = ("lm_head.weight",)  # the tied head, when an older saver wrote it out (it is wte)


def _is_mask_buffer(name: str) -> bool:
    """h.{i}.attn.bias / h.{i}.attn.masked_bias: the causal mask old transformers versions stored."""
    parts = name.split(".")
    return len(parts) == 4 and parts[0] == "h" and parts[1].isdigit() and parts[2] == "attn" and \
        parts[3] in ("bias", "masked_bias")


async def _inspect_hf(named: dict[str, FileLike]) -> Gpt2Source:
    try:
        hf = json.loads(await _small_text(named["config.json"]))
    except ValueError as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError("config.json is not valid JSON") from None
    if not isinstance(hf, dict):
        raise ModelFileError("config.json is not a JSON object")
    try:
        cfg = config_from_hf(hf, vocab_multiple=1)
    except ConfigError as e:
        raise ModelFileError(f"config.json: {e}") from None
    weights = [f for name, f in named.items() if name.endswith(".safetensors")]
    if not weights:
        other = [n for n in named if n.endswith((".bin", ".pt", ".pth", ".h5", ".msgpack"))]
        hint = f" ({other[0]} is not read: the page reads safetensors only)" if other else ""
        raise ModelFileError(f"no model.safetensors among the files{hint}")
    if len(weights) > 1:
        raise ModelFileError("several .safetensors files: sharded checkpoints are not supported")
    tensors = await _safetensors_tensors(weights[0], cfg)
    texts = None
    for vocab_name, merges_name in FILE_NAMES:
        if vocab_name in named and merges_name in named:
            texts = (await _small_text(named[vocab_name]), await _small_text(named[merges_name]))
            break
    return Gpt2Source(cfg, tensors, texts, "Hugging Face files", sorted(named))


async def _safetensors_tensors(f: FileLike, cfg: GPT2Config) -> list[TensorSource]:
    if f.size < 8:
        raise ModelFileError(f"{f.name}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", await _read_exact(f, 0, 8))
    if n > MAX_SAFETENSORS_HEADER or 8 + n > f.size:
        raise ModelFileError(f"{f.name}: not a safetensors file (bad header length), or truncated")
    try:
        header = json.loads((await _read_exact(f, 8, 8 + n)).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelFileError(f"{f.name}: the safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{f.name}: the safetensors header is not a JSON object")
    shapes = dict(cfg.param_shapes())  # vocab_multiple 1: wte is (V, C), as stored
    base, found = 8 + n, {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        name = key.removeprefix("transformer.")
        ends = info.get("data_offsets") if isinstance(info, dict) else None
        if isinstance(ends, list) and len(ends) == 2 and isinstance(ends[1], int) and base + ends[1] > f.size:
            raise ModelFileError(f"{f.name}: the file is truncated (tensor {key!r} ends past its end)")
        if name in _SKIPPED or _is_mask_buffer(name):
            continue
        if name not in shapes:
            raise ModelFileError(f"unexpected tensor {key!r}: not a GPT-2 checkpoint")
        if not isinstance(info, dict):
            raise ModelFileError(f"{f.name}: tensor {key!r} has no description")
        dtype = SAFETENSORS_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ModelFileError(f"tensor {name!r} has dtype {info.get('dtype')!r}; the page reads F32, F16, BF16")
        shape = tuple(info.get("shape") or ())
        if shape != shapes[name]:
            raise ModelFileError(f"tensor {name!r} has shape {shape}, expected {shapes[name]}")
        offsets = info.get("data_offsets")
        count = numel(shape)
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or offsets[1] - offsets[0] != count * SOURCE_BYTES[dtype] or offsets[0] < 0):
            raise ModelFileError(f"{f.name}: tensor {name!r} has bad data offsets")
        if base + offsets[1] > f.size:
            raise ModelFileError(f"{f.name}: the file is truncated (tensor {name!r} ends past its end)")
        found[name] = TensorSource(name, f.name, base + offsets[0], count, dtype)
    missing = [name for name in shapes if name not in found]
    if missing:
        raise ModelFileError(f"the checkpoint lacks {len(missing)} tensor(s), first {missing[0]!r}")
    return [found[name] for name in shapes]


# -- limits and chunks -----------------------------------------------------------------------------
def check_fits(source: Gpt2Source, max_binding_bytes: int, dtype: str = "f32") -> None:
    """ModelFileError when one tensor, with weights of `dtype`, needs a larger storage buffer than the device
    allows (the smaller of maxStorageBufferBindingSize and maxBufferSize, as granted when the device was
    opened with the adapter's own limits)."""
    big = max(source.tensors, key=lambda t: t.gpu_bytes(dtype))
    if big.gpu_bytes(dtype) > max_binding_bytes:
        raise ModelFileError(
            f"this model is too large for this GPU adapter: {big.name} needs {_mb(big.gpu_bytes(dtype))} in one "
            f"storage buffer ({dtype} weights), and the adapter allows at most {_mb(max_binding_bytes)} "
            f"(maxStorageBufferBindingSize / maxBufferSize). Try a smaller model or another browser/GPU.")


def file_range(t: TensorSource, values_per_row: int, row0: int, rows: int) -> tuple[int, int]:
    """(file offset, values) of rows row0 .. row0 + rows - 1 of `t` (rows of values_per_row values), the
    piece gpu/gpt2_weights.WeightWriter's chunk (row0, rows) takes."""
    return t.offset + row0 * values_per_row * SOURCE_BYTES[t.dtype], rows * values_per_row


def describe(source: Gpt2Source, dtype: str = "f32") -> str:
    c = source.cfg
    return (f"GPT-2: {c.n_layer} layers, width {c.n_embd}, {c.n_head} heads, context {c.n_positions}, "
            f"{c.real_param_count:,} parameters ({source.kind}; {_mb(source.gpu_bytes(dtype))} on the GPU as "
            f"{dtype} weights)")


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"
