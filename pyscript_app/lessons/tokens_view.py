"""What the tokens lesson shows, as HTML strings: coloured tokens, counts, the merge table.

Each token is a <span> coloured by its id (the same id gets the same colour everywhere on the
page) with its id and bytes in the tooltip; whitespace is shown as · and ↵. Every text goes
through html.escape. The DOM glue (browser/lesson_tokens.py) sets each block in one assignment.
"""

from __future__ import annotations

from html import escape

from ..data.bpe import Tokenizer
from .tokens import counts, merge_rows, pieces, show_bytes, vocab_size_for, with_first_merges

MAX_SHOWN = 3000  # tokens drawn per row; longer texts are counted in full but drawn cut


def colour(token_id: int) -> str:
    """A light background for a token id; neighbouring ids get far-apart hues (golden-angle steps)."""
    hue = (token_id * 137.508) % 360
    return f"hsl({hue:.0f} 75% 82%)"


def _span(token_id: int, piece: bytes, title: str) -> str:
    text = show_bytes(piece) or "∅"
    breaks = "<br>" * piece.count(b"\n")  # keep the text's lines: a newline token ends its line
    return (f'<span class="tg-tok" style="background:{colour(token_id)}" title="{escape(title)}">'
            f"{escape(text)}</span>{breaks}")


def token_spans(tok: Tokenizer, text: str) -> str:
    """The text as coloured BPE tokens."""
    ids = tok.encode(text)
    spans = [_span(i, p, f"token {i}: {p!r}") for i, p in pieces(tok, ids[:MAX_SHOWN])]
    return "".join(spans) + _cut_note(len(ids))


def char_spans(text: str) -> str:
    """The text as one token per Unicode character (a character-level model's view)."""
    spans = [_span(ord(ch), ch.encode("utf-8"), f"character U+{ord(ch):04X}") for ch in text[:MAX_SHOWN]]
    return "".join(spans) + _cut_note(len(text))


def _cut_note(n: int) -> str:
    return f' <em class="tg-cut">… {n - MAX_SHOWN} more not drawn</em>' if n > MAX_SHOWN else ""


def counts_line(c: dict[str, float]) -> str:
    return (f'<span data-count="characters">{c["characters"]}</span> characters, '
            f'<span data-count="bytes">{c["bytes"]}</span> bytes, '
            f'<span data-count="tokens">{c["tokens"]}</span> tokens: '
            f'<span data-count="bytes-per-token">{c["bytes_per_token"]:.2f}</span> bytes per token')


def merges_list(tok: Tokenizer, limit: int = 120) -> str:
    """The first `limit` merges as compact chips, in learning order: "·t + h → ·th"."""
    chips = [f'<span class="tg-merge" title="merge {rank + 1}: new id {new_id}">{_piece(left)}+{_piece(right)}'
             f"→{_piece(merged)}</span>" for rank, new_id, left, right, merged in merge_rows(tok, limit)]
    more = tok.n_merges - len(chips)
    if more > 0:
        chips.append(f'<span class="tg-merge">… and {more} more</span>')
    return f'<div class="tg-merges">{"".join(chips)}</div>'


def _piece(b: bytes) -> str:
    return f"<code>{escape(show_bytes(b))}</code>"


def compression_column(tok: Tokenizer, text: str, steps: int = 4) -> dict[int, float]:
    """merges used -> bytes per token of `text`, after 0, 1/steps, ..., all of tok's merges."""
    ks = sorted({round(tok.n_merges * s / steps) for s in range(steps + 1)})
    return {k: counts(with_first_merges(tok, k), text)["bytes_per_token"] for k in ks}


def compression_table(columns: dict[str, dict[int, float]]) -> str:
    """<table>: one row per merge count, one column per text (from compression_column)."""
    head = "".join(f"<th>{escape(name)}</th>" for name in columns)
    ks = sorted({k for column in columns.values() for k in column})
    rows = []
    for k in ks:
        cells = "".join(f"<td>{column[k]:.2f}</td>" if k in column else "<td>–</td>" for column in columns.values())
        rows.append(f'<tr data-merges="{k}"><td>{k}</td><td>{vocab_size_for(k)}</td>{cells}</tr>')
    return (f"<table><thead><tr><th>merges</th><th>vocabulary</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")
