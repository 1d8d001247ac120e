"""Atomic session checkpoints: a JSON header and raw little-endian arrays. Never pickle.

File layout (`<state_dir>/sessions/<session_id>.tgck`):
    magic b"TGCK" | version u32 | header_len u64 | header (UTF-8 JSON) | zero padding to 64 bytes |
    arrays, each at its `offset` (from the start of the data area, multiples of 64)
The header's "arrays" list names each array: {name, dtype ("<f4"), count, offset, sha256}.

A write goes to a temp file in the same folder, is fsynced, renamed over the old file, and the
folder is fsynced: a crash leaves either the old checkpoint or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import tempfile
from pathlib import Path

import numpy as np

MAGIC = b"TGCK"
VERSION = 1
PREFIX = struct.Struct("<4sIQ")
ALIGN = 64
ALLOWED_DTYPES = {"<f4": np.dtype("<f4")}
MAX_HEADER_BYTES = 16 << 20
SUFFIX = ".tgck"
SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")

log = logging.getLogger("tabgpt.relay.storage")


class CheckpointError(ValueError):
    """A checkpoint file that is truncated, corrupt or not ours."""


def _pad(n: int) -> int:
    return (-n) % ALIGN


def encode_checkpoint(header: dict, arrays: dict[str, np.ndarray]) -> list[bytes | memoryview]:
    """The file's pieces, in order (kept separate so large arrays are never copied)."""
    entries, blobs, offset = [], [], 0
    for name, arr in arrays.items():
        data = np.ascontiguousarray(arr, dtype="<f4")
        view = memoryview(data).cast("B")
        entries.append({"name": name, "dtype": "<f4", "count": int(data.size), "offset": offset,
                        "sha256": hashlib.sha256(view).hexdigest()})
        blobs += [view, b"\0" * _pad(len(view))]
        offset += len(view) + _pad(len(view))
    head = json.dumps({**header, "arrays": entries}, separators=(",", ":"), allow_nan=False).encode()
    if len(head) > MAX_HEADER_BYTES:  # the limit decode_checkpoint applies: never write what cannot load
        raise CheckpointError(f"header of {len(head)} bytes is over the {MAX_HEADER_BYTES} byte limit")
    prefix = PREFIX.pack(MAGIC, VERSION, len(head))
    return [prefix, head, b"\0" * _pad(len(prefix) + len(head)), *blobs]


def decode_checkpoint(buf: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    if len(buf) < PREFIX.size:
        raise CheckpointError("file is shorter than its prefix")
    magic, version, head_len = PREFIX.unpack_from(buf)
    if magic != MAGIC or version != VERSION:
        raise CheckpointError("not a tabgpt relay checkpoint (magic/version)")
    if head_len > MAX_HEADER_BYTES or PREFIX.size + head_len > len(buf):
        raise CheckpointError("header length out of range")
    try:
        header = json.loads(buf[PREFIX.size : PREFIX.size + head_len])
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise CheckpointError("header is not JSON (or nested too deeply)") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays"), list):
        raise CheckpointError("header has no array list")
    start = PREFIX.size + head_len + _pad(PREFIX.size + head_len)
    arrays = {}
    for entry in header.pop("arrays"):
        try:
            name, dtype, count, offset, digest = (entry[k] for k in ("name", "dtype", "count", "offset", "sha256"))
        except (KeyError, TypeError):
            raise CheckpointError("array entry lacks a field") from None
        if not isinstance(name, str) or name in arrays:
            raise CheckpointError("an array's name is not a string, or is used twice")
        if (not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES or not _is_int(count) or not _is_int(offset)
                or not isinstance(digest, str)):
            raise CheckpointError(f"array {name!r}: bad dtype/count/offset/sha256")
        lo, hi = start + offset, start + offset + count * ALLOWED_DTYPES[dtype].itemsize
        if offset < 0 or count < 0 or hi > len(buf):
            raise CheckpointError(f"array {name!r} runs past the end of the file")
        raw = memoryview(buf)[lo:hi]
        if hashlib.sha256(raw).hexdigest() != digest:
            raise CheckpointError(f"array {name!r} fails its sha256")
        arrays[name] = np.frombuffer(raw, dtype=ALLOWED_DTYPES[dtype]).astype(np.float32)
    return header, arrays


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def write_atomic(path: Path, pieces: list[bytes | memoryview]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for piece in pieces:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # platforms without directory fds (Windows)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class CheckpointStore:
    """One checkpoint file per session under <state_dir>/sessions/."""

    def __init__(self, state_dir: str | os.PathLike):
        self.folder = Path(state_dir) / "sessions"

    def path_for(self, session_id: str) -> Path:
        if not SESSION_ID_RE.fullmatch(session_id):
            raise CheckpointError(f"unsafe session id {session_id!r}")
        return self.folder / (session_id + SUFFIX)

    def save(self, session_id: str, header: dict, arrays: dict[str, np.ndarray]) -> None:
        write_atomic(self.path_for(session_id), encode_checkpoint(header, arrays))

    def delete(self, session_id: str) -> None:
        self.path_for(session_id).unlink(missing_ok=True)

    def load_all(self) -> list[tuple[dict, dict[str, np.ndarray]]]:
        """Every readable checkpoint; any bad file (corrupt, crafted, unreadable, or naming another
        session than its file name) is logged and skipped (and left in place)."""
        out = []
        if not self.folder.is_dir():
            return out
        for path in sorted(self.folder.glob("*" + SUFFIX)):
            try:
                header, arrays = decode_checkpoint(path.read_bytes())
                if header.get("session_id") != path.name[: -len(SUFFIX)]:
                    raise CheckpointError("its session_id is not its file name")
                out.append((header, arrays))
            except Exception as e:  # whatever a crafted file provokes, the relay still starts
                log.error("skipping checkpoint %s: %s: %s", path.name, type(e).__name__, e)
        return out
