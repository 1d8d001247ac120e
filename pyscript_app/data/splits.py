"""How a text splits into documents, and the documents into train and val.

Pure functions of the text (no numpy): `tabgpt data`, the site build and the playground's pasted
text all split the same way.

Document kinds and splits (deterministic, disjoint, about 90% train / 10% val):
    "lines"   one document per non-empty line; line i (0-based, counting every line) goes to val
              when pcg(i ^ SPLIT_SALT) % 10 == 0. Used by `names`.
    "stream"  one continuous document; train is the first 90% of the characters, cut at the
              newline nearest to that point (the newline stays in train), val is the rest.
              Used by `shakespeare`.
A `.txt` path (or pasted text) is "lines" when it has more than 100 lines, no blank line (blank
lines at the very end are ignored) and every line is shorter than 64 characters (a list of names,
words, short phrases), else "stream". Without the blank-line test tiny shakespeare, whose lines
are all short, would count as "lines".
"""

from __future__ import annotations

from ..rng import pcg

SPLIT_SALT = 0x5EED_DA7A  # decorrelates the val choice of line i from other uses of pcg(i)
VAL_FRACTION = 0.1
LINES_MIN_COUNT = 100  # a text needs MORE than this many lines to count as "lines"...
LINES_MAX_CHARS = 64  # ...and every line shorter than this


class SplitError(ValueError):
    """An unknown document kind."""


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the file does not start another line
    return lines


def infer_kind(text: str) -> str:
    """"lines" when more than 100 lines, none blank, all shorter than 64 characters; else "stream".

    The blank-line test matters: every line of tiny shakespeare is short too, but its speeches are
    separated by blank lines, which a list of names never has (blank lines at the end are ignored).
    """
    lines = _lines(text.rstrip("\n"))
    if len(lines) > LINES_MIN_COUNT and all(0 < len(line) < LINES_MAX_CHARS for line in lines):
        return "lines"
    return "stream"


def is_val_line(index: int) -> bool:
    """Whether line `index` of a "lines" data set belongs to val (about 1 in 10)."""
    return pcg((index ^ SPLIT_SALT) & 0xFFFFFFFF) % 10 == 0


def split_documents(text: str, kind: str) -> tuple[list[str], list[str]]:
    """(train documents, val documents) of a normalised text; see the module doc for the rules."""
    if kind == "lines":
        train: list[str] = []
        val: list[str] = []
        for i, line in enumerate(_lines(text)):
            if line:
                (val if is_val_line(i) else train).append(line)
        return train, val
    if kind == "stream":
        cut = stream_cut(text)
        return [text[:cut]], ([text[cut:]] if cut < len(text) else [])
    raise SplitError(f"unknown document kind {kind!r} (lines, stream)")


def stream_cut(text: str) -> int:
    """Where train ends in a "stream" text: just after the newline nearest to 90% of it."""
    target = int(len(text) * (1.0 - VAL_FRACTION))
    before = text.rfind("\n", 0, target)
    after = text.find("\n", target)
    candidates = [i + 1 for i in (before, after) if 0 <= i < len(text) - 1]
    if not candidates:
        return max(1, target)  # no usable newline: cut at the character
    return min(candidates, key=lambda c: abs(c - target))
