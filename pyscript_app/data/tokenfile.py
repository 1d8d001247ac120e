"""The token file format (`NAME.train.bin`, `NAME.val.bin`): write, read, check.

Pure Python (`array`, no numpy): the browser reads the same files.

Layout, all little-endian, 52-byte header then the payload:
    offset  size  field
         0     4  magic          b"TGTK"
         4     2  version        u16 = 1
         6     2  reserved       u16 = 0 (aligns what follows)
         8     4  vocab_size     u32 (up to 65536, so every id fits the u16 payload)
        12    32  tokenizer      raw sha256 of the tokenizer (Tokenizer.sha256 as bytes)
        44     8  count          u64 number of tokens
        52  2*count  tokens      u16 each
The file length must be exactly 52 + 2 * count; every token must be < vocab_size.

"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from pathlib import Path
from typing import Sequence

from .bpe import Tokenizer

MAGIC = b"TGTK"
VERSION = 1
_HEADER = struct.Struct("<4sHHI32sQ")
HEADER_SIZE = _HEADER.size  # 52


class TokenFileError(ValueError):
    """A token file is missing, malformed, or belongs to another tokenizer."""


def write_tokens(path: Path | str, ids: Sequence[int], tokenizer: Tokenizer) -> None:
    """Write ids with a header naming `tokenizer`; atomic (temp file + rename)."""
    path = Path(path)
    try:
        tokens = ids if isinstance(ids, array) and ids.typecode == "H" else array("H", ids)
    except OverflowError:
        raise TokenFileError("token ids must be in [0, 65535] to fit a uint16 token file") from None
    if tokens and max(tokens) >= tokenizer.vocab_size:
        raise TokenFileError(f"token {max(tokens)} is outside the vocabulary of size {tokenizer.vocab_size}")
    sha = bytes.fromhex(tokenizer.sha256)
    header = _HEADER.pack(MAGIC, VERSION, 0, tokenizer.vocab_size, sha, len(tokens))
    payload = _little_endian(tokens)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(payload.tobytes())
    os.replace(tmp, path)


def read_header(path: Path | str) -> dict:
    """The header fields of a token file: version, vocab_size, tokenizer_sha256 (hex), count."""
    with open(path, "rb") as f:
        head = f.read(HEADER_SIZE)
    return _parse_header(head, Path(path))


def read_tokens(path: Path | str, tokenizer: Tokenizer | None = None) -> array:
    """Read a token file into array('H'). With `tokenizer`, check the file was made by it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TokenFileError(f"no token file {path}; run `tabgpt data` first") from None
    head = _parse_header(data[:HEADER_SIZE], path)
    expected = HEADER_SIZE + 2 * head["count"]
    if len(data) != expected:
        raise TokenFileError(f"{path} is {len(data)} bytes, its header says {expected}: truncated or corrupt")
    if tokenizer is not None and head["tokenizer_sha256"] != tokenizer.sha256:
        raise TokenFileError(
            f"{path.name} was encoded with tokenizer {head['tokenizer_sha256'][:12]}, "
            f"not {tokenizer.sha256[:12]}; rerun tabgpt data"
        )
    tokens = array("H")
    tokens.frombytes(data[HEADER_SIZE:])
    tokens = _little_endian(tokens)
    if tokens and max(tokens) >= head["vocab_size"]:
        raise TokenFileError(f"{path} holds token {max(tokens)}, outside its vocab_size {head['vocab_size']}")
    return tokens


def _parse_header(head: bytes, path: Path) -> dict:
    if len(head) < HEADER_SIZE:
        raise TokenFileError(f"{path} is too short for a token file ({len(head)} < {HEADER_SIZE} header bytes)")
    magic, version, _reserved, vocab_size, sha, count = _HEADER.unpack(head)
    if magic != MAGIC:
        raise TokenFileError(f"{path} is not a tabgpt token file (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise TokenFileError(f"{path} has token file version {version}; this tabgpt reads version {VERSION}")
    if not (258 <= vocab_size <= 65536):
        raise TokenFileError(f"{path} has an impossible vocab_size {vocab_size}")
    return {"version": version, "vocab_size": vocab_size, "tokenizer_sha256": sha.hex(), "count": count}


def _little_endian(tokens: array) -> array:
    """The same array on little-endian hosts; a byte-swapped copy on big-endian ones."""
    if sys.byteorder == "little":
        return tokens
    swapped = array("H", tokens)
    swapped.byteswap()
    return swapped
