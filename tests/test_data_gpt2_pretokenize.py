"""GPT-2's pre-tokenizer without `regex` equals GPT-2's pattern run by `regex` and by HF tokenizers."""

from __future__ import annotations

import re

import pytest
from _gpt2 import (
    STRESS_SNIPPETS,
    STRESS_TEXT,
    all_code_points,
    gpt2_regex,
    hf_chunks,
    require_oracle_modules,
    unicode_text,
)
from hypothesis import given, settings

from pyscript_app.data.gpt2_pretokenize import WHITESPACE, classify, pretokenize


@pytest.fixture(autouse=True)
def _oracles():
    require_oracle_modules()


@pytest.fixture(scope="module")
def code_points() -> str:
    return all_code_points()


@pytest.mark.parametrize(
    "text, chunks",
    [
        ("Hello world", ["Hello", " world"]),
        ("a   b", ["a", "  ", " b"]),  # \s+(?!\S): the last space goes to the word
        ("a\t\tb", ["a", "\t", "\t", "b"]),  # ...but only U+0020 joins a word; a lone \t is \s+
        ("x\n\ny", ["x", "\n", "\n", "y"]),
        ("end  ", ["end", "  "]),  # at the end of the text the whole run is one chunk
        ("I'm he'll", ["I", "'m", " he", "'ll"]),
        ("IT'S", ["IT", "'", "S"]),  # upper case is not a contraction
        ("''s 's", ["''", "s", " '", "s"]),  # a contraction only where a chunk starts
        ("'sup", ["'s", "up"]),
        ("٣²Ⅻ x1", ["٣²Ⅻ", " x", "1"]),  # \p{N}: Nd, No and Nl
        ("e\u0301", ["e", "\u0301"]),  # a combining mark (Mn) is "other"
        ("a\x1fb", ["a", "\x1f", "b"]),  # U+001F: str.isspace() says yes, \s says no
        ("a\u00a0 b", ["a", "\u00a0", " b"]),
        ("", []),
    ],
)
def test_documented_examples(text, chunks):
    assert pretokenize(text) == chunks
    assert gpt2_regex().findall(text) == chunks


def test_whitespace_is_regex_s_not_isspace(code_points):
    import regex

    regex_s = set(regex.findall(r"\s", code_points))
    assert WHITESPACE == regex_s
    assert {ch for ch in code_points if ch.isspace()} - WHITESPACE == set("\x1c\x1d\x1e\x1f")


def test_classes_equal_regex_on_every_code_point(code_points):
    import regex

    classes = classify(code_points)
    for name, pattern in (("L", r"\p{L}+"), ("N", r"\p{N}+"), ("S", r"\s+"), ("O", r"[^\s\p{L}\p{N}]+")):
        expected = [m.span() for m in regex.finditer(pattern, code_points)]
        got = [m.span() for m in re.finditer(f"{name}+", classes)]
        assert got == expected, name


def test_classes_equal_tokenizers_on_every_code_point(code_points):
    # All characters of one class (ours) in a row, after an ASCII character of that class: HF
    # gives one chunk per class only if it puts every character in the same class as we do.
    classes = classify(code_points)
    runs = {name: "".join(ch for ch, c in zip(code_points, classes) if c == name) for name in "LNOS"}
    probe = "a" + runs["L"] + "1" + runs["N"] + "!" + runs["O"] + " " + runs["S"]
    expected = ["a" + runs["L"], "1" + runs["N"], "!" + runs["O"], " " + runs["S"]]
    assert pretokenize(probe) == expected
    chunks = hf_chunks(probe)
    assert len(chunks) == 4, [c[:3] for c in chunks][:20]
    assert chunks == expected


def test_stress_text_equals_both_oracles():
    for text in [*STRESS_SNIPPETS, STRESS_TEXT]:
        chunks = pretokenize(text)
        assert "".join(chunks) == text
        assert chunks == gpt2_regex().findall(text), text
        assert chunks == hf_chunks(text), text


def test_datasets_equal_regex(data_mirror):
    for name in ("shakespeare.txt", "names.txt"):
        text = (data_mirror / name).read_text(encoding="utf-8")
        assert pretokenize(text) == gpt2_regex().findall(text), name


@settings(max_examples=200, deadline=None)
@given(unicode_text())
def test_random_text_equals_both_oracles(text):
    chunks = pretokenize(text)
    assert chunks == gpt2_regex().findall(text)
    assert chunks == hf_chunks(text)
