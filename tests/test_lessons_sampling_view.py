"""pyscript_app/lessons/sampling_view.py: the candidates table, the entropy line, the generated chips."""

from __future__ import annotations

import math

from pyscript_app.lessons.lesson_checkpoint import open_lesson_model
from pyscript_app.lessons.sampling import Candidate, Generation
from pyscript_app.lessons.sampling_view import candidates_table, generated_html, spread_line
from test_lessons_lesson_checkpoint import tiny_checkpoint


def test_candidates_table_shows_both_probabilities_and_cut_rows():
    rows = [Candidate(4, 0.5, 0.8), Candidate(0, 0.3, 0.2), Candidate(7, 0.1, 0.0)]
    html = candidates_table(rows, lambda t: f"t{t} <x>", step=2)
    assert 'data-step="2"' in html and html.count("<tr") == 4
    assert "50.0 %</td><td class=\"tg-num\">80.0 %" in html
    assert html.count('class="tg-cut"') == 1 and "&lt;x&gt;" in html


def test_spread_line_counts_equivalent_choices():
    assert spread_line([0.25] * 4) == (f"Entropy of the draw: {math.log(4):.2f} nats, as uncertain as a choice "
                                       "among 4.0 equal options.")


def test_generated_html_marks_prompt_new_tokens_and_the_end():
    tok, _, _, blob = tiny_checkpoint(seed=6)
    gen = Generation(open_lesson_model(blob), "ka", seed=1)
    html = generated_html(gen, str)
    assert html.count("tg-prompt") == gen.n_prompt and "tg-new" not in html
    while gen.advance(1.0, 0) is not None:
        pass
    html = generated_html(gen, str)
    assert html.count("tg-new") == len(gen.ids) - gen.n_prompt + (gen.stop_token is not None)
    assert ("the name ends." in html) == (gen.stop_token is not None)
