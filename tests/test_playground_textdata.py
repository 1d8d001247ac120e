"""pyscript_app/playground/textdata.py: pasted or uploaded text checked, split, tokenized in the page."""

from __future__ import annotations

import random

import pytest

from pyscript_app.config import VOCAB_SIZE
from pyscript_app.playground.settings import InputError
from pyscript_app.playground.textdata import MAX_TEXT_BYTES, check_text, prepare_text, text_data_id


def names_text(n: int = 300, seed: int = 0) -> str:
    r = random.Random(seed)
    syllables = ["ka", "ri", "mo", "an", "el", "la", "to", "ne", "sa", "vi"]
    return "\n".join("".join(r.choice(syllables) for _ in range(r.randint(2, 4))) for _ in range(n)) + "\n"


@pytest.mark.parametrize("raw, words", [
    (b"", "empty"), ("   \n\n  ", "empty"), (b"abc\x00def" * 50, "NUL"), (b"\xff\xfe" + b"a" * 300, "not UTF-8"),
    ("\x01\x02\x03" * 100 + "a" * 300, "control characters"), ("short text", "at least"),
])
def test_unusable_text_is_refused_with_a_reason(raw, words):
    with pytest.raises(InputError, match=words):
        check_text(raw)


def test_oversized_text_is_refused_before_decoding():
    with pytest.raises(InputError, match="MiB"):
        check_text(b"a" * (MAX_TEXT_BYTES + 1))


def test_good_text_is_normalised():
    assert check_text("line one\r\n" * 40) == "line one\n" * 40


def test_prepare_text_splits_trains_the_bpe_and_encodes_both_splits():
    text = check_text(names_text())
    data = prepare_text(text)
    tok = data.tokenizer
    assert tok.vocab_size == VOCAB_SIZE and tok.n_merges > 0
    assert data.train[0] == tok.bos and data.val[0] == tok.bos
    assert len(data.train) > 5 * len(data.val) > 0  # about 90% / 10% of the lines
    assert tok.decode(data.train).replace("\n", "") != ""
    assert data.data_id == text_data_id(text) == prepare_text(text).data_id
    assert text_data_id(text + "x") != data.data_id
    data.check_fits(16)
    with pytest.raises(InputError, match="too short for a context"):
        data.check_fits(len(data.val))
