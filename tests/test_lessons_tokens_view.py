"""pyscript_app/lessons/tokens_view.py: coloured tokens, counts, merges, compression table."""

from __future__ import annotations

import random
import re

from pyscript_app.lessons import tokens_view as view
from pyscript_app.lessons.tokens import train_tokenizer, with_first_merges


def seeded_text(seed: int = 3, lines: int = 40) -> str:
    """Words of random syllables: enough distinct pairs for the merges these tests ask for."""
    rng = random.Random(seed)
    syllables = ["ka", "to", "ri", "mu", "sen", "dal", "or", "qui", "pe", "lo", "zan", "eth"]
    return "\n".join(" ".join("".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(10))
                     for _ in range(lines))


TEXT = seeded_text()


def test_one_span_per_token_in_order_and_escaped():
    tok = train_tokenizer(TEXT, 30)
    text = "the <cat>\nsat"
    html = view.token_spans(tok, text)
    assert html.count('class="tg-tok"') == len(tok.encode(text))
    assert "<cat>" not in html and "&lt;" in html
    assert html.count("<br>") == 1


def test_char_spans_one_per_character_coloured_by_code_point():
    html = view.char_spans("aé a")
    assert html.count('class="tg-tok"') == 4
    assert html.count(view.colour(ord("a"))) == 2


def test_colours_are_deterministic_and_differ_for_neighbouring_ids():
    assert view.colour(300) == view.colour(300)
    assert len({view.colour(i) for i in range(256, 266)}) == 10


def test_long_texts_are_drawn_cut_but_counted_in_full():
    tok = with_first_merges(train_tokenizer(TEXT, 10), 0)
    text = "x" * (view.MAX_SHOWN + 5)
    html = view.token_spans(tok, text)
    assert html.count('class="tg-tok"') == view.MAX_SHOWN and "5 more not drawn" in html


def test_counts_line_carries_each_count():
    line = view.counts_line({"characters": 3, "bytes": 4, "tokens": 2, "bytes_per_token": 2.0})
    assert re.findall(r'data-count="([\w-]+)">([\d.]+)<', line) == [
        ("characters", "3"), ("bytes", "4"), ("tokens", "2"), ("bytes-per-token", "2.00")]


def test_merges_list_shows_the_first_merges_then_how_many_more():
    tok = train_tokenizer(TEXT, 30)
    html = view.merges_list(tok, limit=10)
    assert html.count('class="tg-merge"') == 11 and "… and 20 more" in html
    assert view.merges_list(tok).count('class="tg-merge"') == 30


def test_compression_table_rows_at_fractions_of_the_merges():
    tok = train_tokenizer(TEXT, 40)
    train, other = view.compression_column(tok, TEXT), view.compression_column(tok, "zzz qqq")
    assert list(train) == [0, 10, 20, 30, 40] and train[0] == other[0] == 1.0  # bytes only: one byte per token
    assert train[40] > train[10] > 1.0
    html = view.compression_table({"train": train, "other": other})
    assert re.findall(r'data-merges="(\d+)"', html) == ["0", "10", "20", "30", "40"]
    assert "<td>0</td><td>258</td><td>1.00</td><td>1.00</td>" in html
    assert "<td>–</td>" in view.compression_table({"a": {0: 1.0, 5: 2.0}, "b": {0: 1.0}})
