"""Token files (`NAME.train.bin`, `NAME.val.bin`) and preparing a data set into them.

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

Prepared data set in a data dir: `NAME.tokenizer.json`, `NAME.train.bin`, `NAME.val.bin`, where
NAME is the registry name or the stem of a .txt path. The streams are `Tokenizer.encode_docs` of
each split ([BOS] doc [BOS] doc ...); the tokenizer is trained on the train split only.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from array import array
from pathlib import Path
from typing import Sequence

from .bpe import DEFAULT_VOCAB_SIZE, Tokenizer, TokenizerError
from .datasets import dataset_name, default_cache_dir, load_text, split_documents

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


# ---- a prepared data set ----------------------------------------------------------------------


def prepared_paths(name: str, data_dir: Path | str) -> dict[str, Path]:
    d = Path(data_dir)
    return {
        "tokenizer": d / f"{name}.tokenizer.json",
        "train": d / f"{name}.train.bin",
        "val": d / f"{name}.val.bin",
    }


def _split_stats(tok: Tokenizer, docs: list[str], ids: Sequence[int]) -> dict:
    n_bytes = tok.bytes_of_tokens(ids)  # text bytes plus one per BOS (the document separator)
    return {
        "documents": len(docs),
        "bytes": n_bytes,
        "tokens": len(ids),
        "bytes_per_token": n_bytes / max(len(ids), 1),
    }


def prepare_dataset(
    name_or_path: str, data_dir: Path | str | None = None, vocab_size: int = DEFAULT_VOCAB_SIZE
) -> dict:
    """Load the text, train the tokenizer on the train split, write the three files into data_dir.

    Returns stats: dataset, kind, vocab_size, n_merges, tokenizer_sha256, train / val (documents,
    bytes, tokens, bytes_per_token; bytes count each BOS as one), seconds, files."""
    t0 = time.perf_counter()
    data_dir = Path(data_dir) if data_dir is not None else default_cache_dir()
    text, info = load_text(name_or_path, data_dir)
    train_docs, val_docs = split_documents(text, info.kind)
    if not train_docs or not val_docs:
        raise TokenFileError(f"{info.source} is too short to split into train and val")
    tok = Tokenizer.train(train_docs, vocab_size)
    train_ids = tok.encode_docs(train_docs)
    val_ids = tok.encode_docs(val_docs)

    name = dataset_name(name_or_path)
    paths = prepared_paths(name, data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    # the .bin files first, the tokenizer last: load_prepared treats a missing tokenizer as "not prepared"
    write_tokens(paths["train"], train_ids, tok)
    write_tokens(paths["val"], val_ids, tok)
    tmp = paths["tokenizer"].with_name(f".{paths['tokenizer'].name}.{os.getpid()}.tmp")
    tmp.write_text(tok.to_json(), encoding="utf-8")
    os.replace(tmp, paths["tokenizer"])
    return {
        "dataset": name,
        "kind": info.kind,
        "source": info.source,
        "vocab_size": tok.vocab_size,
        "n_merges": tok.n_merges,
        "tokenizer_sha256": tok.sha256,
        "train": _split_stats(tok, train_docs, train_ids),
        "val": _split_stats(tok, val_docs, val_ids),
        "seconds": time.perf_counter() - t0,
        "files": {k: str(p) for k, p in paths.items()},
    }


def load_tokenizer(path: Path | str) -> Tokenizer:
    try:
        return Tokenizer.from_json(Path(path).read_bytes())
    except TokenizerError as e:
        raise TokenFileError(f"{path}: {e}") from None


def load_prepared(
    name_or_path: str, data_dir: Path | str | None = None, vocab_size: int | None = None
) -> tuple[Tokenizer, array, array]:
    """(tokenizer, train tokens, val tokens); prepares the data set first when files are missing
    or when `vocab_size` is given and differs from the prepared tokenizer's."""
    data_dir = Path(data_dir) if data_dir is not None else default_cache_dir()
    paths = prepared_paths(dataset_name(name_or_path), data_dir)
    tok = load_tokenizer(paths["tokenizer"]) if all(p.is_file() for p in paths.values()) else None
    if tok is None or (vocab_size is not None and tok.vocab_size != vocab_size):
        prepare_dataset(name_or_path, data_dir, vocab_size or DEFAULT_VOCAB_SIZE)
        tok = load_tokenizer(paths["tokenizer"])
    return tok, read_tokens(paths["train"], tok), read_tokens(paths["val"], tok)
