"""GPT-2's pre-tokenizer (how text is cut into words before BPE), in pure Python without `regex`.

GPT-2 (OpenAI's encoder.py, Hugging Face `tokenizers`' ByteLevel pre-tokenizer) cuts text with

    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+

using the `regex` module (OpenAI) or Oniguruma (Hugging Face). Python's `re` has no `\\p{..}` and
Pyodide ships no `regex`, so this module hand-writes the same matcher.

Character classes. Every character gets exactly one of four classes (`classify`):
    "L"  letter:      unicodedata.category(ch) in Lu Ll Lt Lm Lo            (\\p{L})
    "N"  number:      unicodedata.category(ch) in Nd Nl No                  (\\p{N}: ٣ ² Ⅻ too)
    "S"  whitespace:  ch in WHITESPACE                                      (\\s)
    "O"  other:       everything else                                      ([^\\s\\p{L}\\p{N}])
WHITESPACE is the Unicode White_Space property (25 code points), which is what both `regex`'s and
Oniguruma's Unicode `\\s` match. It is NOT `str.isspace()`: that also accepts U+001C..U+001F (the
"information separators"), which GPT-2 treats as "O". (No letter or number is whitespace, so the
classes never overlap.)

Unicode version. Letters and numbers come from the running Python's `unicodedata`, so characters
assigned in a newer Unicode version than the runtime's are "O" here (CPython 3.11: Unicode 14;
CPython 3.13: 15.1; CPython 3.14, so Pyodide 314: 16.0; `tokenizers` 0.23's Oniguruma: 16.0;
`regex` 2026: 17.0). For every character that the runtime and the oracle both know, the classes are
equal (tests/test_data_gpt2_pretokenize.py sweeps all code points).

Matcher. A single left-to-right pass over the class string (`pretokenize`); at each position the
first alternative of the pattern that matches wins, exactly as in the regex:
  1. "'" followed by s, t, re, ve, m, ll or d (lower case only: "'S" is not a contraction);
  2-4. an optional U+0020 SPACE, then a maximal run of one class L, N or O (the space joins the run
     only when the next character is not whitespace);
  5. `\\s+(?!\\S)`: a whitespace run that reaches the end of the text is one chunk; one that is
     followed by a non-space gives up its last character, which starts the next chunk (so
     "a   b" -> "a", "  ", " b": the last space becomes the word's prefix);
  6. `\\s+`: a lone whitespace character before a non-space (e.g. "\\n" before a letter).

Shapes/types: `pretokenize(text: str) -> list[str]`, chunks whose concatenation is `text`;
`classify(text: str) -> str`, one class letter per character (same length as `text`).
"""

from __future__ import annotations

import unicodedata

# Unicode White_Space: what `\s` matches in `regex` and in Oniguruma with Unicode (checked by test).
WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r\x20\x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

# Alternative 1's suffixes, in the pattern's order (none is a prefix of another, so order is moot).
CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")


class _ClassTable(dict):
    """Code point -> class letter, filled on first sight.

    A dict (not a function) so that `str.translate` looks characters up in C: only a character not
    seen before costs a Python call (`__missing__`); a whole text is classified in one C loop.
    """

    def __missing__(self, code_point: int) -> str:
        ch = chr(code_point)
        if ch in WHITESPACE:
            cls = "S"
        else:
            major = unicodedata.category(ch)[0]
            cls = major if major in ("L", "N") else "O"
        self[code_point] = cls
        return cls


_CLASSES = _ClassTable()


def classify(text: str) -> str:
    """One class letter ("L", "N", "S", "O") per character of `text`."""
    return text.translate(_CLASSES)


def _contraction_end(text: str, i: int) -> int:
    """End of the contraction starting at text[i] == "'", or 0 when none starts there."""
    for suffix in CONTRACTIONS:
        if text.startswith(suffix, i + 1):
            return i + 1 + len(suffix)
    return 0


def pretokenize(text: str) -> list[str]:
    """Cut `text` into GPT-2's chunks; "".join(result) == text."""
    cls = classify(text)
    n = len(text)
    chunks = []
    i = 0
    while i < n:
        start = i
        ch = text[i]
        if ch == "'":
            # 1. contractions, tried before everything else (even before "'" as punctuation)
            end = _contraction_end(text, i)
            if end:
                chunks.append(text[i:end])
                i = end
                continue
        kind = cls[i]
        if ch == " " and i + 1 < n and cls[i + 1] != "S":
            # 2-4. " ?X+": the space is a prefix of the run that follows it
            i += 1
            kind = cls[i]
        j = i + 1
        while j < n and cls[j] == kind:
            j += 1
        if kind == "S" and j < n and j - i > 1:
            # 5. "\s+(?!\S)": the run stops before a non-space, so keep its last character back;
            #    a single whitespace character before a non-space is alternative 6 (the whole run).
            j -= 1
        chunks.append(text[start:j])
        i = j
    return chunks
