"""Checkpoint file: one self-contained file, readable in pure Python (browser) and numpy (native).

Layout of `checkpoint.tgpt` (little-endian):
    magic     4 bytes  b"TGCK"
    version   u32      1
    hlen      u32      length of the JSON header in bytes
    header    hlen bytes of UTF-8 JSON:
                {"train_config": {...}, "model_config": {...}, "step": int,
                 "tokenizer": {...tokenizer json...}, "arrays": [{"name": str, "count": int}, ...],
                 "meta": {...}}
    arrays    for each entry of header["arrays"], in order: count float32 values

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


def encode(header: dict, arrays: dict[str, bytes]) -> bytes:
    """Serialise. `arrays` maps name -> float32 little-endian bytes (array('f'), np.ndarray.tobytes)."""
    header = dict(header)
    header["arrays"] = [{"name": k, "count": len(v) // 4} for k, v in arrays.items()]
    hjson = json.dumps(header, sort_keys=True).encode()
    parts = [MAGIC, struct.pack("<II", VERSION, len(hjson)), hjson]
    parts += [bytes(v) for v in arrays.values()]
    return b"".join(parts)


def decode(blob: bytes) -> tuple[dict, dict[str, memoryview]]:
    """Parse. Returns the header and name -> float32 bytes views (zero-copy)."""
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
        name, count = entry.get("name"), entry.get("count")
        if not isinstance(name, str) or not isinstance(count, int) or count < 0:
            raise CheckpointError("checkpoint array table is malformed")
        end = off + 4 * count
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


def save(path: str | os.PathLike, header: dict, arrays: dict[str, bytes]) -> Path:
    """Atomic write: temp file, fsync, rename (a crash never leaves a half checkpoint)."""
    p = Path(path)
    if p.is_dir() or not p.suffix:
        p.mkdir(parents=True, exist_ok=True)
        p = p / FILENAME
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(encode(header, arrays))
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
