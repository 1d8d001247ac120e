"""pyscript_app/lessons/autograd_run.py: running the reader's code and checking its gradients."""

from __future__ import annotations

import pytest

from pyscript_app.lessons.autograd_run import GradCheck, GradCheckReport, SnippetError, gradient_check, run_snippet

NEURON = """
x = Value(1.5, label="x")
w = Value(-0.8, label="w")
b = Value(0.3)
out = ((x * w + b).tanh() - 0.5) ** 2 + 0.1 * w ** 2
"""

WRONG_SQUARE = """
def square(v):
    out = Value(v.data ** 2, (v,), "sq")
    def backward():
        v.grad += v.data * out.grad
    out._backward = backward
    return out

a = Value(3.0, label="a")
out = square(a) + a
"""


def test_inputs_are_the_values_the_code_made_in_order_with_their_names():
    run = run_snippet(NEURON)
    assert [v.data for v in run.inputs] == [1.5, -0.8, 0.3]  # the constants 0.5, 2, 0.1 are not inputs
    assert run.names[id(run.out)] == "out" and run.names[id(run.inputs[2])] == "b"


def test_gradient_check_passes_for_a_correct_engine_and_names_each_input():
    run = run_snippet(NEURON)
    report = gradient_check(NEURON, run)
    assert report.passed and report.verdict == "gradient check: passed"
    assert [c.name for c in report.checks] == ["x", "w", "b"]
    assert all(c.analytic != 0.0 for c in report.checks)


def test_gradient_check_catches_a_wrong_backward_rule():
    run = run_snippet(WRONG_SQUARE)
    report = gradient_check(WRONG_SQUARE, run)
    (check,) = report.checks
    assert check.analytic == pytest.approx(4.0) and check.numeric == pytest.approx(7.0, rel=1e-6)
    assert not report.passed and report.verdict == "gradient check: FAILED"


def test_inputs_made_in_a_loop_are_matched_between_runs():
    code = "xs = [Value(i * 0.5 + 0.1) for i in range(4)]\nout = sum((x * x for x in xs), Value(0.0))\n"
    run = run_snippet(code)
    report = gradient_check(code, run)
    assert len(report.checks) == 5 and report.passed  # four xs and the Value(0.0) start of the sum
    assert [c.analytic for c in report.checks[:4]] == pytest.approx([0.2, 1.2, 2.2, 3.2])


def test_code_without_out_is_explained():
    with pytest.raises(SnippetError, match="`out`"):
        run_snippet("a = Value(1.0)\n")


def test_errors_name_the_line_of_the_readers_code():
    with pytest.raises(SnippetError, match=r"ZeroDivisionError \(line 2\)"):
        run_snippet("a = Value(1.0)\nout = a / 0\n")
    with pytest.raises(SnippetError, match=r"SyntaxError \(line 1\)"):
        run_snippet("out = (\n")


def test_a_report_without_inputs_does_not_pass():
    assert not GradCheckReport().passed
    assert GradCheckReport([GradCheck("a", 1.0, 2.0, 2.0 + 1e-9)]).passed
    assert not GradCheckReport([GradCheck("a", 1.0, float("nan"), 2.0)]).passed
