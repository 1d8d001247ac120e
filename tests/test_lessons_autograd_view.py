"""pyscript_app/lessons/autograd_view.py: the gradient-check table and verdict line."""

from __future__ import annotations

from pyscript_app.lessons.autograd_run import GradCheck, GradCheckReport
from pyscript_app.lessons.autograd_view import gradcheck_table, verdict_text


def test_table_marks_each_input_and_escapes_names():
    report = GradCheckReport([GradCheck("<x>", 1.0, 2.0, 2.0), GradCheck("y", 1.0, 4.0, 7.0)])
    table = gradcheck_table(report)
    assert table.count('data-verdict="ok"') == 1 and table.count('data-verdict="MISMATCH"') == 1
    assert "<x>" not in table and "&lt;x&gt;" in table


def test_verdict_counts_inputs_and_mismatches():
    ok = GradCheckReport([GradCheck("x", 1.0, 2.0, 2.0)])
    bad = GradCheckReport([GradCheck("x", 1.0, 2.0, 2.0), GradCheck("y", 1.0, 4.0, 7.0)])
    assert verdict_text(ok).startswith("gradient check: passed (1 input;")
    assert verdict_text(bad).startswith("gradient check: FAILED (2 inputs, 1 mismatched;")


def test_no_inputs_says_so():
    assert "nothing to check" in gradcheck_table(GradCheckReport())
