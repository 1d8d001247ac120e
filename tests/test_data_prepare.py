"""Preparing a data set (text -> tokenizer + token files) and loading it back."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from pyscript_app.data import datasets, prepare, tokenfile
from pyscript_app.data.bpe import Tokenizer
from pyscript_app.data.splits import split_documents
from pyscript_app.data.tokenfile import TokenFileError, read_tokens
from pyscript_app.rng import pcg


def names_text(n: int, seed: int = 1) -> str:
    """A names.txt-like text: n short lowercase 'names', one per line."""
    letters = "aeiou" + "bcdfghjklmnprstvz"
    out = []
    for i in range(n):
        h = pcg(seed * 1_000_003 + i)
        out.append("".join(letters[(h >> s) % len(letters)] for s in range(0, 3 * (3 + h % 5), 3)))
    return "\n".join(out) + "\n"


def test_prepare_a_txt_path_writes_three_consistent_files(tmp_path):
    src = tmp_path / "mynames.txt"
    src.write_text(names_text(400))
    out = tmp_path / "data"
    stats = prepare.prepare_dataset(str(src), out, vocab_size=300)
    assert stats["dataset"] == "mynames" and stats["kind"] == "lines"
    assert stats["vocab_size"] == 300 and 0 < stats["n_merges"] <= 42
    tok = Tokenizer.from_json((out / "mynames.tokenizer.json").read_text())
    assert tok.sha256 == stats["tokenizer_sha256"]
    train_docs, val_docs = split_documents(src.read_text(), "lines")
    for split, docs in (("train", train_docs), ("val", val_docs)):
        ids = read_tokens(out / f"mynames.{split}.bin", tok)
        assert list(ids) == tok.encode_docs(docs)
        s = stats[split]
        assert (s["documents"], s["tokens"]) == (len(docs), len(ids))
        assert s["bytes"] == sum(len(d) + 1 for d in docs)  # one byte per BOS, as for "\n"
        assert s["bytes_per_token"] == s["bytes"] / s["tokens"]
    assert stats["seconds"] > 0


def test_prepare_a_registry_name_from_the_mirror(tmp_path, monkeypatch):
    raw = names_text(300).encode()
    spec = replace(datasets.REGISTRY["names"], sha256=hashlib.sha256(raw).hexdigest(), n_bytes=len(raw))
    monkeypatch.setitem(datasets.REGISTRY, "names", spec)
    (tmp_path / "names.txt").write_bytes(raw)
    monkeypatch.setenv(datasets.MIRROR_ENV, str(tmp_path))
    stats = prepare.prepare_dataset("names", tmp_path / "data", vocab_size=280)
    assert stats["dataset"] == "names"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "names.tokenizer.json",
        "names.train.bin",
        "names.val.bin",
    ]


def test_load_prepared_prepares_once_then_reads(tmp_path, monkeypatch):
    src = tmp_path / "story.txt"
    src.write_text("".join(f"Once, in year {i}, the fox ran far away.\n" for i in range(60)))
    out = tmp_path / "data"
    tok, train, val = prepare.load_prepared(str(src), out, vocab_size=300)
    assert train[0] == tok.bos and val[0] == tok.bos and len(train) > len(val) > 0
    calls = []
    monkeypatch.setattr(prepare, "prepare_dataset", lambda *a, **k: calls.append(a))
    tok2, train2, val2 = prepare.load_prepared(str(src), out)
    assert calls == [] and tok2.sha256 == tok.sha256 and train2 == train and val2 == val


def test_load_prepared_redoes_a_different_vocab_size(tmp_path):
    src = tmp_path / "story.txt"
    src.write_text("".join(f"The {i}th fox jumped over the lazy dog again.\n" for i in range(60)))
    tok, _, _ = prepare.load_prepared(str(src), tmp_path, vocab_size=300)
    tok2, train, _ = prepare.load_prepared(str(src), tmp_path, vocab_size=320)
    assert (tok.vocab_size, tok2.vocab_size) == (300, 320)
    assert tokenfile.read_header(tmp_path / "story.train.bin")["vocab_size"] == 320


def test_stale_token_files_are_detected(tmp_path):
    src = tmp_path / "story.txt"
    src.write_text("".join(f"A short tale number {i}.\n" for i in range(50)))
    prepare.prepare_dataset(str(src), tmp_path, vocab_size=300)
    d = json.loads((tmp_path / "story.tokenizer.json").read_text())
    other = Tokenizer(d["merges"][:-1], 300)  # a different tokenizer took its place
    (tmp_path / "story.tokenizer.json").write_text(other.to_json())
    with pytest.raises(TokenFileError, match="rerun tabgpt data"):
        prepare.load_prepared(str(src), tmp_path)


def test_too_short_text_cannot_be_prepared(tmp_path):
    src = tmp_path / "tiny.txt"
    src.write_text("x")
    with pytest.raises(TokenFileError, match="too short"):
        prepare.prepare_dataset(str(src), tmp_path, vocab_size=300)
