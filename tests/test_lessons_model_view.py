"""pyscript_app/lessons/model_view.py: the parameter table, the formula line and the parity badge."""

from __future__ import annotations

from pyscript_app.config import PRESETS, preset
from pyscript_app.gpu.parity_runner import CaseResult, OutputCheck
from pyscript_app.lessons.model_view import badge, formula_line, params_table, presets_table


def result(name: str, bad: int, err: float) -> CaseResult:
    return CaseResult(name, ["rmsnorm_forward"], [OutputCheck("y", 10, bad, err, 3 if bad else -1, 1.0, 2.0)])


def test_params_table_lists_every_group_and_the_total():
    cfg = preset("nano")
    html = params_table(cfg)
    assert f'data-testid="param-total">{cfg.param_count:,}<' in html
    assert html.count("<tr data-group=") == 2 + 2 * cfg.n_layer + 2
    assert "<code>h0.qkv</code> (16, 48)" in html


def test_formula_line_sums_to_the_count():
    cfg = preset("tiny")
    line = formula_line(cfg)
    assert line.startswith("V·C (token embedding) + ") and line.endswith(f"= {cfg.param_count:,}")
    assert f"{cfg.vocab_size * cfg.n_embd:,}" in line


def test_presets_table_has_a_row_per_preset():
    html = presets_table()
    assert html.count("<tr data-preset=") == len(PRESETS)
    assert f"{preset('large').param_count:,}" in html


def test_badge_states():
    assert badge(None) == ("idle", "WGSL vs the reference: not checked yet")
    assert badge(None, "1/2 case")[0] == "running"
    state, text = badge([result("a", 0, 1e-7), result("b", 0, 3e-6)])
    assert state == "pass" and text == "PASS: WGSL matches the reference (2/2 cases, max error 3e-06)"
    state, text = badge([result("a", 0, 1e-7), result("b", 2, 0.5)])
    assert state == "fail" and text.startswith("FAIL: 1 of 2 cases differ; FAIL b")
    assert badge([])[0] == "fail"
