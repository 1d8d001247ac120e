"""pyscript_app/lessons/tokens.py: training, prefixes of the merges, counts, readable token bytes."""

from __future__ import annotations

import random

import pytest

from pyscript_app.data.bpe import Tokenizer
from pyscript_app.lessons.tokens import (MAX_MERGES, counts, merge_rows, pieces, show_bytes, train_tokenizer,
                                         vocab_size_for, with_first_merges)


def seeded_text(seed: int = 7, words: int = 600) -> str:
    """Words made of random syllables (enough distinct pairs for a hundred merges), CRLF line ends."""
    rng = random.Random(seed)
    syllables = ["ka", "to", "ri", "mu", "sen", "dal", "or", "qui", "pe", "lo", "zan", "eth"]
    out = [" ".join("".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(12))
           for _ in range(words // 12)]
    return "\r\n".join(out)


TEXT = seeded_text()


def test_training_is_the_real_tokenizer_on_normalised_text_and_reports_progress():
    calls = []
    tok = train_tokenizer(TEXT, 64, lambda done, total: calls.append((done, total)))
    reference = Tokenizer.train(TEXT.replace("\r\n", "\n"), vocab_size_for(64))
    assert tok.merges == reference.merges and tok.n_merges == 64
    assert calls[-1] == (64, 64)


def test_training_rejects_a_merge_count_outside_the_slider():
    with pytest.raises(ValueError):
        train_tokenizer(TEXT, MAX_MERGES + 1)
    with pytest.raises(ValueError):
        train_tokenizer(TEXT, -1)


def test_the_first_k_merges_are_what_training_k_merges_learns():
    tok = train_tokenizer(TEXT, 40)
    for k in (0, 7, 40):
        assert with_first_merges(tok, k).merges == train_tokenizer(TEXT, k).merges
    assert with_first_merges(tok, 999).n_merges == tok.n_merges  # clamped


def test_counts_and_compression_grow_with_merges():
    tok = train_tokenizer(TEXT, 40)
    text = TEXT.splitlines()[0]
    n = len(text)
    zero = counts(with_first_merges(tok, 0), text)
    full = counts(tok, text)
    assert zero == {"characters": n, "bytes": n, "tokens": n, "bytes_per_token": 1.0}
    assert full["tokens"] == len(tok.encode(text)) < n
    assert full["bytes_per_token"] == pytest.approx(n / full["tokens"])
    assert counts(tok, "")["bytes_per_token"] == 0.0
    assert counts(tok, "é")["characters"] == 1 and counts(tok, "é")["bytes"] == 2


def test_pieces_and_merge_rows_agree_with_the_tokenizer():
    tok = train_tokenizer(TEXT, 20)
    line = TEXT.splitlines()[1]
    assert b"".join(p for _, p in pieces(tok, tok.encode(line))) == line.encode()
    rows = merge_rows(tok)
    assert len(rows) == 20 and len(merge_rows(tok, 5)) == 5
    for rank, new_id, left, right, merged in rows:
        assert new_id == 256 + rank and merged == left + right == tok.token_bytes(new_id)


def test_show_bytes_makes_whitespace_visible_and_marks_partial_characters():
    assert show_bytes(b" the\n") == "·the↵"
    assert show_bytes("é".encode()) == "é"
    assert show_bytes("é".encode()[:1]) == "<c3>"
    assert show_bytes(b"a" + "字".encode()[1:]) == "a<ad><97>"
    assert show_bytes(b"") == ""
