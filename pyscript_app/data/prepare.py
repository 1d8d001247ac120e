"""Preparing a data set: text -> train/val documents -> a BPE tokenizer trained on train -> token files.

What `tabgpt data`, `tabgpt train` and the site build run. Pure Python: the browser reads the files.

Prepared data set in a data dir: `NAME.tokenizer.json`, `NAME.train.bin`, `NAME.val.bin`, where
NAME is the registry name or the stem of a .txt path. The streams are `Tokenizer.encode_docs` of
each split ([BOS] doc [BOS] doc ...); the tokenizer is trained on the train split only.
"""

from __future__ import annotations

import os
import time
from array import array
from pathlib import Path
from typing import Sequence

from .bpe import DEFAULT_VOCAB_SIZE, Tokenizer, TokenizerError
from .datasets import dataset_name, default_cache_dir, load_text
from .splits import split_documents
from .tokenfile import TokenFileError, read_tokens, write_tokens


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
