"""pyscript_app/lessons/training_view.py: the LR chart, the position view, the weight heat maps."""

from __future__ import annotations

from pyscript_app.lessons.training import PositionView, lesson_config, lr_points
from pyscript_app.lessons.training_view import adam_text, lr_chart, matrix_heat_map, position_html, schedule_text


def test_lr_chart_plots_every_step_and_marks_the_current_one():
    cfg = lesson_config(50)
    svg = lr_chart(lr_points(cfg), cfg, current_step=10)
    assert 'data-steps="50"' in svg and svg.count("<circle") == 1
    assert len(svg.split('points="')[1].split('"')[0].split()) == 50
    assert "<circle" not in lr_chart(lr_points(cfg), cfg)
    assert schedule_text(cfg).startswith(f"50 steps: linear warmup to lr = {cfg.lr:g} over the first "
                                         f"{cfg.warmup_steps} steps, constant until step 40")
    assert f"β₁ = {cfg.beta1:g}" in adam_text(cfg) and f"batch {cfg.batch} × {cfg.seq_len}" in adam_text(cfg)


def test_position_html_highlights_the_target_among_the_predictions():
    view = PositionView(1, [9, 4], 5, [(5, 0.5), (6, 0.25)], 0.5)
    html = position_html(view, lambda t: f"<{t}>")
    assert 'data-position="1"' in html and 'data-loss="0.6931"' in html
    assert html.count('class="tg-hit"') == 1 and "in the model's top guesses" in html
    assert "&lt;5&gt;" in html and "<5>" not in html
    miss = position_html(PositionView(0, [9], 7, [(5, 0.5)], 0.01), str)
    assert "not among the model's top guesses" in miss and "tg-hit" not in miss


def test_matrix_heat_map_colours_by_sign_and_scales_to_the_largest_value():
    svg = matrix_heat_map([[1.0, -2.0], [0.0, 0.5]], "w")
    assert 'data-cells="4"' in svg and "max |v| = 2" in svg
    assert svg.count("<rect") == 3  # zeros are left empty
    assert 'fill="#1565c0" fill-opacity="1.00"' in svg and 'fill="#c62828" fill-opacity="0.25"' in svg
    assert matrix_heat_map([[0.0]], "zeros").count("<rect") == 0
