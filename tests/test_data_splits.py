"""Document kinds and the train/val split (pure functions of the text)."""

from __future__ import annotations

import pytest

from pyscript_app.data.splits import SplitError, infer_kind, split_documents


def test_kind_needs_short_non_blank_lines():
    names = "".join(f"n{i}\n" for i in range(200))
    assert infer_kind(names) == "lines"
    assert infer_kind(names + "\n\n") == "lines"  # blank lines at the end do not count
    assert infer_kind(names.replace("n7\n", "n7\n\n")) == "stream"  # like shakespeare
    assert infer_kind(names + "x" * 64 + "\n") == "stream"


def test_lines_split_is_deterministic_disjoint_and_about_ten_percent():
    lines = [f"w{i}" for i in range(3000)]
    text = "\n".join(lines) + "\n"
    train, val = split_documents(text, "lines")
    assert split_documents(text, "lines") == (train, val)
    assert sorted(train + val) == sorted(lines) and not set(train) & set(val)
    assert 0.07 < len(val) / len(lines) < 0.13
    # membership depends on the line's index only: appending lines leaves earlier choices alone
    train2, val2 = split_documents(text + "extra1\nextra2\n", "lines")
    assert val2[: len(val)] == val


def test_lines_split_drops_blank_lines():
    train, val = split_documents("a\n\nb\n" * 50, "lines")
    assert "" not in train + val and len(train + val) == 100


def test_stream_split_cuts_at_a_newline_near_ninety_percent():
    text = "".join(f"line {i} of the stream\n" for i in range(500))
    (train,), (val,) = split_documents(text, "stream")
    assert train + val == text
    assert train.endswith("\n") and val.startswith("line ")
    assert abs(len(train) / len(text) - 0.9) < 0.01
    assert split_documents(text, "stream") == ([train], [val])


def test_stream_without_newlines_cuts_at_the_character():
    text = "x" * 1000
    (train,), (val,) = split_documents(text, "stream")
    assert (len(train), len(val)) == (900, 100)


def test_unknown_kind_is_an_error():
    with pytest.raises(SplitError):
        split_documents("abc", "paragraphs")
