"""Byte-level BPE: segmentation, training (against a naive reference), round trips, JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyscript_app.data import bpe
from pyscript_app.data.bpe import Tokenizer, TokenizerError
from pyscript_app.rng import pcg

SYLLABLES = ["ka", "ri", "on", "the", "st", "ma", "el", "é", "lo", "ng", "ß", "a"]


def synthetic_docs(seed: int, n_docs: int, words_per_doc: int) -> list[str]:
    """Seeded pseudo-English: words from syllables, punctuation, digits, newlines, a little UTF-8."""
    docs, k = [], 0
    for d in range(n_docs):
        words = []
        for _ in range(words_per_doc):
            k += 1
            h = pcg(seed * 1_000_003 + k)
            word = "".join(SYLLABLES[(h >> s) % len(SYLLABLES)] for s in range(0, 3 * (1 + h % 3), 3))
            tail = ["", "", "", ",", ".", ":\n", "!\n\n", " 1234", "'s"][(h >> 20) % 9]
            words.append(word + tail)
        docs.append(" ".join(words) + ("\n" if d % 2 else ""))
    return docs


@pytest.fixture(scope="module")
def tiny_tok() -> Tokenizer:
    return Tokenizer.train(synthetic_docs(seed=1, n_docs=40, words_per_doc=30), vocab_size=320)


def naive_train(docs: list[str], n_merges: int) -> list[tuple[int, int]]:
    """Reference BPE: rescan every chunk for every merge (slow, obviously right)."""
    words = [list(c.encode("utf-8")) for d in docs for c in bpe.segment(d)]
    merges = []
    for k in range(n_merges):
        counts: dict[tuple[int, int], int] = {}
        for w in words:
            for p in zip(w, w[1:]):
                counts[p] = counts.get(p, 0) + 1
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))  # most frequent, then smallest
        merges.append(best)
        words = [bpe._merge_pair(w, best, 256 + k) for w in words]
    return merges


# ---- segmentation -----------------------------------------------------------------------------


@given(st.text())
def test_segment_covers_any_text(text):
    assert "".join(bpe.segment(text)) == text


def test_segment_splits_words_punctuation_and_newlines():
    chunks = bpe.segment("First Citizen:\nWe know't, we  know 1234.\n\n")
    expected = ["First", " Citizen", ":\n", "We", " know", "'t", ",", " we", " ", " know", " 123", "4", ".\n\n"]
    assert chunks == expected


def test_normalize_only_touches_newlines():
    assert bpe.normalize("a\r\nb\rc\n\td ") == "a\nb\nc\n\td "


# ---- training ---------------------------------------------------------------------------------


def test_incremental_training_matches_naive_reference():
    docs = synthetic_docs(seed=2, n_docs=12, words_per_doc=25)
    tok = Tokenizer.train(docs, vocab_size=258 + 60)
    assert list(tok.merges) == naive_train(docs, 60)


def test_ties_go_to_the_smallest_pair():
    # chunks "ab", " cd": three pairs each seen once; (32, 99) = (" ", "c") is the smallest
    tok = Tokenizer.train("ab cd", vocab_size=259)
    assert tok.merges == ((ord(" "), ord("c")),)


def test_training_is_deterministic():
    docs = synthetic_docs(seed=3, n_docs=20, words_per_doc=20)
    assert Tokenizer.train(docs, 400).sha256 == Tokenizer.train(list(docs), 400).sha256


def test_every_merge_is_applied_when_encoding_the_training_split():
    train_docs = synthetic_docs(seed=4, n_docs=30, words_per_doc=30)
    tok = Tokenizer.train(train_docs, vocab_size=500)
    ids = tok.encode_docs(train_docs)
    assert tok.applied_merges(ids) == set(range(256, 256 + tok.n_merges))


def test_chunks_never_cross_documents():
    # "ab" + "ab" as one text would learn merges across the join; as two documents nothing joins
    tok = Tokenizer.train(["xa", "bx"], vocab_size=300)
    assert (ord("a"), ord("b")) not in tok.merges


def test_running_out_of_pairs_keeps_vocab_size_and_specials():
    tok = Tokenizer.train("abab", vocab_size=1024)
    assert tok.n_merges < 766
    assert (tok.vocab_size, tok.bos, tok.eos) == (1024, 1022, 1023)
    assert tok.decode(tok.encode("abab")) == "abab"


def test_progress_callback_reports_merges():
    seen = []
    docs = synthetic_docs(seed=5, n_docs=10, words_per_doc=20)
    Tokenizer.train(docs, 258 + 128, progress=lambda k, n: seen.append((k, n)))
    assert seen[-1] == (128, 128)


# ---- encoding and decoding --------------------------------------------------------------------


@given(st.binary(max_size=300))
@settings(max_examples=200, deadline=None)
def test_bytes_round_trip(tiny_tok, data):
    assert tiny_tok.decode_bytes(tiny_tok.encode_bytes(data)) == data


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_text_round_trip(tiny_tok, text):
    ids = tiny_tok.encode(text)
    assert tiny_tok.decode(ids) == text
    assert all(0 <= i < tiny_tok.bos for i in ids)


def test_encoding_compresses_text_like_the_training_text(tiny_tok):
    text = synthetic_docs(seed=9, n_docs=1, words_per_doc=200)[0]
    stats = bpe.compression_stats(tiny_tok, text)
    assert stats["bytes"] == len(text.encode("utf-8"))
    assert stats["bytes_per_token"] > 1.5


def test_decode_of_a_cut_utf8_sequence_replaces_but_bytes_are_exact(tiny_tok):
    ids = tiny_tok.encode_bytes("é".encode("utf-8")[:1])
    assert tiny_tok.decode(ids) == "\ufffd"
    assert tiny_tok.decode_bytes(ids) == b"\xc3"


def test_encode_docs_puts_bos_before_each_document(tiny_tok):
    docs = ["kari on", "the", "stel"]
    ids = tiny_tok.encode_docs(docs)
    starts = [i for i, t in enumerate(ids) if t == tiny_tok.bos]
    assert len(starts) == 3 and starts[0] == 0
    bounds = starts + [len(ids)]
    assert [tiny_tok.decode(ids[a + 1 : b]) for a, b in zip(bounds, bounds[1:])] == docs


def test_specials_decode_to_nothing_and_count_as_one_byte(tiny_tok):
    assert tiny_tok.token_bytes(tiny_tok.bos) == b"" and tiny_tok.token_bytes(tiny_tok.eos) == b""
    ids = tiny_tok.encode_docs(["ab", "cde"])
    assert tiny_tok.bytes_of_tokens(ids) == len("ab\ncde\n")


def test_token_bytes_of_a_merge_is_its_parts(tiny_tok):
    a, b = tiny_tok.merges[0]
    assert tiny_tok.token_bytes(256) == tiny_tok.token_bytes(a) + tiny_tok.token_bytes(b)


def test_ids_outside_the_vocabulary_are_rejected(tiny_tok):
    with pytest.raises(TokenizerError):
        tiny_tok.decode([1, tiny_tok.vocab_size])
    with pytest.raises(TokenizerError):
        tiny_tok.decode_bytes([-1])
    with pytest.raises(TokenizerError):
        tiny_tok.token_bytes(tiny_tok.vocab_size)


# ---- JSON -------------------------------------------------------------------------------------


def test_json_round_trip_keeps_sha256_and_encoding(tiny_tok):
    again = Tokenizer.from_json(tiny_tok.to_json())
    assert again.sha256 == tiny_tok.sha256
    assert again.merges == tiny_tok.merges
    text = "kari, the stel 42!"
    assert again.encode(text) == tiny_tok.encode(text)


def test_json_fields(tiny_tok):
    d = json.loads(tiny_tok.to_json())
    assert d["vocab_size"] == 320 and d["specials"] == {"bos": 318, "eos": 319}
    assert d["pattern"] == bpe.SEGMENT_PATTERN and len(d["merges"]) == tiny_tok.n_merges
    assert d["sha256"] == tiny_tok.sha256


def test_sha256_changes_with_the_merges(tiny_tok):
    fewer = Tokenizer(tiny_tok.merges[:-1], tiny_tok.vocab_size)
    assert fewer.sha256 != tiny_tok.sha256


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["merges"].__setitem__(0, [d["merges"][0][1], d["merges"][0][0]]),  # content vs sha
        lambda d: d.__setitem__("pattern", r"\w+|\W"),
        lambda d: d.__setitem__("specials", {"bos": 0, "eos": 1}),
        lambda d: d["merges"].append([9999, 1]),
        lambda d: d.__setitem__("version", 99),
        lambda d: d.__setitem__("vocab_size", 100),
    ],
)
def test_from_json_rejects_tampered_files(tiny_tok, tamper):
    d = json.loads(tiny_tok.to_json())
    tamper(d)
    with pytest.raises(TokenizerError):
        Tokenizer.from_json(json.dumps(d))


def test_from_json_rejects_non_json():
    with pytest.raises(TokenizerError):
        Tokenizer.from_json("{not json")
