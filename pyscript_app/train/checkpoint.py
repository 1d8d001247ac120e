"""Checkpoint file: one self-contained file, readable in pure Python (browser) and numpy (native).

Layout of `checkpoint.tgpt` (little-endian):
    magic     4 bytes  b"TGCK"
    version   u32      1
    hlen      u32      length of the JSON header in bytes
    header    hlen bytes of UTF-8 JSON:
                {"train_config": {...}, "model_config": {...}, "step": int,
                 "tokenizer": {...tokenizer json...},
                 "arrays": [{"name": str, "count": int, "dtype": "f32" | "f16"}, ...], "meta": {...}}
    arrays    for each entry of header["arrays"], in order: count values of its dtype (f32 when the
              entry names none: 4 bytes each; f16: 2 bytes each)

The arrays are "params" (the flat parameter vector, layout config.ModelConfig.param_shapes) and,
for a resumable checkpoint, "adam_m" and "adam_v" (AdamW moments, same layout). No pickle: a
checkpoint from an untrusted source can be read safely.
"""

from __future__ import annotations

import json
import os
import struct
from array import array
from pathlib import Path

MAGIC = b"TGCK"
VERSION = 1
FILENAME = "checkpoint.tgpt"
MAX_HEADER = 16 << 20


class CheckpointError(ValueError):
    """The file is not a readable tabgpt checkpoint (one line, for the user)."""


DTYPE_BYTES = {"f32": 4, "f16": 2}


def encode(header: dict, arrays: dict[str, bytes], dtypes: dict[str, str] | None = None) -> bytes:
    """Serialise. `arrays` maps name -> little-endian bytes (array('f'), np.ndarray.tobytes), float32
    unless `dtypes` names another dtype for that array ("f16": an imported model's weights)."""
    header = dict(header)
    dtypes = dtypes or {}
    table = []
    for name, data in arrays.items():
        dtype = dtypes.get(name, "f32")
        entry = {"name": name, "count": len(data) // DTYPE_BYTES[dtype]}
        if dtype != "f32":
            entry["dtype"] = dtype
        table.append(entry)
    header["arrays"] = table
    hjson = json.dumps(header, sort_keys=True).encode()
    parts = [MAGIC, struct.pack("<II", VERSION, len(hjson)), hjson]
    parts += [bytes(v) for v in arrays.values()]
    return b"".join(parts)


def decode(blob: bytes) -> tuple[dict, dict[str, memoryview]]:
    """Parse. Returns the header and name -> bytes views (zero-copy) in each array's dtype
    (`array_dtype(header, name)`; f32 unless the table says otherwise)."""
    mv = memoryview(blob)
    if len(mv) < 12 or bytes(mv[:4]) != MAGIC:
        raise CheckpointError("not a tabgpt checkpoint (bad magic)")
    version, hlen = struct.unpack_from("<II", mv, 4)
    if version != VERSION:
        raise CheckpointError(f"unsupported checkpoint version {version}")
    if hlen > MAX_HEADER or 12 + hlen > len(mv):
        raise CheckpointError("checkpoint header is truncated")
    try:
        header = json.loads(bytes(mv[12 : 12 + hlen]).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint header is not valid JSON: {e}") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays"), list):
        raise CheckpointError("checkpoint header lacks its array table")
    arrays, off = {}, 12 + hlen
    for entry in header["arrays"]:
        name, count, dtype = entry.get("name"), entry.get("count"), entry.get("dtype", "f32")
        if not isinstance(name, str) or not isinstance(count, int) or count < 0 or dtype not in DTYPE_BYTES:
            raise CheckpointError("checkpoint array table is malformed")
        end = off + DTYPE_BYTES[dtype] * count
        if end > len(mv):
            raise CheckpointError(f"checkpoint is truncated in array {name!r}")
        arrays[name] = mv[off:end]
        off = end
    if off != len(mv):
        raise CheckpointError("checkpoint has trailing bytes")
    return header, arrays


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint is named by its file or by the run directory holding checkpoint.tgpt."""
    p = Path(path)
    if p.is_dir():
        p = p / FILENAME
    if not p.is_file():
        raise CheckpointError(f"no checkpoint at {path} (expected a {FILENAME} file or a run directory)")
    return p


def array_dtype(header: dict, name: str) -> str:
    """"f32" or "f16": how the array `name` of a decoded checkpoint is stored."""
    for entry in header["arrays"]:
        if entry["name"] == name:
            return entry.get("dtype", "f32")
    raise CheckpointError(f"checkpoint has no array {name!r}")


def save(path: str | os.PathLike, header: dict, arrays: dict[str, bytes], dtypes: dict[str, str] | None = None) -> Path:
    """Atomic write: temp file, fsync, rename (a crash never leaves a half checkpoint)."""
    p = Path(path)
    if p.is_dir() or not p.suffix:
        p.mkdir(parents=True, exist_ok=True)
        p = p / FILENAME
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(encode(header, arrays, dtypes))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
    return p


def load(path: str | os.PathLike) -> tuple[dict, dict[str, memoryview]]:
    return decode(resolve(path).read_bytes())


def floats(view: memoryview | bytes) -> array:
    """float32 bytes -> array('f') (pure Python; numpy callers use np.frombuffer instead)."""
    a = array("f")
    a.frombytes(bytes(view))
    return a
