"""Token files (header, round trip, rejection) and preparing / loading a data set."""

from __future__ import annotations

import hashlib
import json
import struct
from array import array
from dataclasses import replace

import pytest

from pyscript_app import datasets, tokenfile
from pyscript_app.bpe import Tokenizer
from pyscript_app.rng import pcg
from pyscript_app.tokenfile import TokenFileError, read_tokens, write_tokens


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train("the cat sat on the mat; the rat ate the hat.", vocab_size=300)


def seeded_ids(n: int, vocab: int, seed: int = 7) -> list[int]:
    return [pcg(seed * 65_537 + i) % vocab for i in range(n)]


def names_text(n: int, seed: int = 1) -> str:
    """A names.txt-like text: n short lowercase 'names', one per line."""
    letters = "aeiou" + "bcdfghjklmnprstvz"
    out = []
    for i in range(n):
        h = pcg(seed * 1_000_003 + i)
        out.append("".join(letters[(h >> s) % len(letters)] for s in range(0, 3 * (3 + h % 5), 3)))
    return "\n".join(out) + "\n"


# ---- token files ------------------------------------------------------------------------------


def test_round_trip_and_header(tmp_path, tok):
    ids = seeded_ids(1000, tok.vocab_size)
    path = tmp_path / "x.train.bin"
    write_tokens(path, ids, tok)
    back = read_tokens(path, tok)
    assert isinstance(back, array) and back.typecode == "H" and list(back) == ids
    assert path.stat().st_size == tokenfile.HEADER_SIZE + 2 * len(ids) == 52 + 2000
    head = tokenfile.read_header(path)
    assert head == {"version": 1, "vocab_size": 300, "tokenizer_sha256": tok.sha256, "count": 1000}
    raw = path.read_bytes()
    assert raw[:4] == b"TGTK" and raw[12:44] == bytes.fromhex(tok.sha256)
    assert struct.unpack_from("<H", raw, 52)[0] == ids[0]  # payload is little-endian u16


def test_empty_and_array_inputs(tmp_path, tok):
    write_tokens(tmp_path / "e.bin", [], tok)
    assert list(read_tokens(tmp_path / "e.bin", tok)) == []
    ids = array("H", seeded_ids(10, tok.vocab_size))
    write_tokens(tmp_path / "a.bin", ids, tok)
    assert read_tokens(tmp_path / "a.bin") == ids


def test_wrong_tokenizer_is_named_in_the_error(tmp_path, tok):
    other = Tokenizer.train("a completely different text, a different tokenizer", vocab_size=300)
    write_tokens(tmp_path / "x.bin", [1, 2, 3], tok)
    with pytest.raises(TokenFileError) as err:
        read_tokens(tmp_path / "x.bin", other)
    message = str(err.value)
    assert tok.sha256[:12] in message and other.sha256[:12] in message and "rerun tabgpt data" in message


@pytest.mark.parametrize(
    "corrupt, why",
    [
        (lambda raw: b"NOPE" + raw[4:], "not a tabgpt token file"),
        (lambda raw: raw[:4] + struct.pack("<H", 2) + raw[6:], "version 2"),
        (lambda raw: raw[:-1], "truncated"),
        (lambda raw: raw + b"\0\0", "truncated"),
        (lambda raw: raw[:30], "too short"),
        (lambda raw: raw[:8] + struct.pack("<I", 5) + raw[12:], "vocab_size"),
        (lambda raw: raw[:52] + struct.pack("<H", 300) + raw[54:], "outside its vocab_size"),
    ],
)
def test_corrupted_files_are_rejected(tmp_path, tok, corrupt, why):
    path = tmp_path / "x.bin"
    write_tokens(path, [5, 6, 7], tok)
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(TokenFileError, match=why):
        read_tokens(path)


def test_missing_file_says_what_to_run(tmp_path):
    with pytest.raises(TokenFileError, match="tabgpt data"):
        read_tokens(tmp_path / "absent.bin")


def test_ids_outside_the_vocabulary_are_not_written(tmp_path, tok):
    for bad in ([tok.vocab_size], [70_000], [-1]):
        with pytest.raises(TokenFileError):
            write_tokens(tmp_path / "x.bin", bad, tok)
    assert not (tmp_path / "x.bin").exists()


# ---- prepared data sets -----------------------------------------------------------------------


def test_prepare_a_txt_path_writes_three_consistent_files(tmp_path):
    src = tmp_path / "mynames.txt"
    src.write_text(names_text(400))
    out = tmp_path / "data"
    stats = tokenfile.prepare_dataset(str(src), out, vocab_size=300)
    assert stats["dataset"] == "mynames" and stats["kind"] == "lines"
    assert stats["vocab_size"] == 300 and 0 < stats["n_merges"] <= 42
    tok = Tokenizer.from_json((out / "mynames.tokenizer.json").read_text())
    assert tok.sha256 == stats["tokenizer_sha256"]
    train_docs, val_docs = datasets.split_documents(src.read_text(), "lines")
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
    stats = tokenfile.prepare_dataset("names", tmp_path / "data", vocab_size=280)
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
    tok, train, val = tokenfile.load_prepared(str(src), out, vocab_size=300)
    assert train[0] == tok.bos and val[0] == tok.bos and len(train) > len(val) > 0
    calls = []
    monkeypatch.setattr(tokenfile, "prepare_dataset", lambda *a, **k: calls.append(a))
    tok2, train2, val2 = tokenfile.load_prepared(str(src), out)
    assert calls == [] and tok2.sha256 == tok.sha256 and train2 == train and val2 == val


def test_load_prepared_redoes_a_different_vocab_size(tmp_path):
    src = tmp_path / "story.txt"
    src.write_text("".join(f"The {i}th fox jumped over the lazy dog again.\n" for i in range(60)))
    tok, _, _ = tokenfile.load_prepared(str(src), tmp_path, vocab_size=300)
    tok2, train, _ = tokenfile.load_prepared(str(src), tmp_path, vocab_size=320)
    assert (tok.vocab_size, tok2.vocab_size) == (300, 320)
    assert tokenfile.read_header(tmp_path / "story.train.bin")["vocab_size"] == 320


def test_stale_token_files_are_detected(tmp_path):
    src = tmp_path / "story.txt"
    src.write_text("".join(f"A short tale number {i}.\n" for i in range(50)))
    tokenfile.prepare_dataset(str(src), tmp_path, vocab_size=300)
    d = json.loads((tmp_path / "story.tokenizer.json").read_text())
    other = Tokenizer(d["merges"][:-1], 300)  # a different tokenizer took its place
    (tmp_path / "story.tokenizer.json").write_text(other.to_json())
    with pytest.raises(TokenFileError, match="rerun tabgpt data"):
        tokenfile.load_prepared(str(src), tmp_path)


def test_too_short_text_cannot_be_prepared(tmp_path):
    src = tmp_path / "tiny.txt"
    src.write_text("x")
    with pytest.raises(TokenFileError, match="too short"):
        tokenfile.prepare_dataset(str(src), tmp_path, vocab_size=300)
