"""Run the reader's autograd code, then check its gradients against finite differences.

The reader's code builds inputs with `Value(...)` and stores the result in a variable named `out`:

    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    out = (a * b + a).tanh()

run_snippet executes it, calls out.backward(), and returns the graph and every input's gradient.
gradient_check re-runs the SAME code once per input with that input nudged by ±h and compares
the analytic gradient with the slope (f(x+h) - f(x-h)) / 2h. Inputs are "the Values your code
created with Value(...)", matched between runs by creation order, so unlabelled inputs work too
and the code may use loops. Constants inside expressions (the 2 in `a * 2`) are not inputs.

The code runs with Python's exec in the reader's own tab (it is their code); errors come back as a
readable message instead of an exception.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass, field

from .autograd import Value

RESULT_NAME = "out"
STEP = 1e-6  # finite-difference step h; float64 central differences are accurate to ~h**2 + eps/h
ATOL, RTOL = 1e-6, 1e-4  # |analytic - numeric| <= ATOL + RTOL * |numeric|


class SnippetError(Exception):
    """The reader's code failed or did not produce `out`; the message is meant for the page."""


@dataclass
class Run:
    out: Value
    inputs: list[Value]  # the Values the code created, in creation order
    names: dict[int, str]  # id(Value) -> the variable holding it in the reader's code (for the graph)


@dataclass
class GradCheck:
    name: str
    value: float
    analytic: float
    numeric: float

    @property
    def error(self) -> float:
        return abs(self.analytic - self.numeric)

    @property
    def passed(self) -> bool:
        return self.error <= ATOL + RTOL * abs(self.numeric)  # False for NaN


@dataclass
class GradCheckReport:
    checks: list[GradCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def verdict(self) -> str:
        return "gradient check: passed" if self.passed else "gradient check: FAILED"


def input_name(run: Run, index: int) -> str:
    """An input's label, else the variable holding it, else its position."""
    v = run.inputs[index]
    return v.label or run.names.get(id(v)) or f"input {index}"


def _execute(code: str, nudge: tuple[int, float] | None = None) -> Run:
    """exec `code` with a Value that records inputs (and nudges input nudge[0] by nudge[1])."""
    created: list[Value] = []

    class InputValue(Value):  # what `Value(...)` means in the reader's code
        def __init__(self, data, *args, **kwargs):
            super().__init__(data, *args, **kwargs)
            if nudge is not None and nudge[0] == len(created):
                self.data += nudge[1]
            created.append(self)

    InputValue.__name__ = InputValue.__qualname__ = "Value"
    namespace = {"Value": InputValue, "math": math, "__name__": "__lesson__"}
    try:
        exec(compile(code, "<your code>", "exec"), namespace)  # noqa: S102 - the reader's own code, in their tab
    except Exception as e:
        raise SnippetError(_describe(e)) from None
    out = namespace.get(RESULT_NAME)
    if not isinstance(out, Value):
        raise SnippetError(f"your code must store its result, a Value, in a variable named `{RESULT_NAME}`")
    inputs = [v for v in created if not v.parents]  # Value(...) called with parents is an op, not an input
    names = {id(out): RESULT_NAME}
    for name, v in namespace.items():
        if isinstance(v, Value) and not name.startswith("_"):
            names.setdefault(id(v), name)
    return Run(out, inputs, names)


def _describe(e: Exception) -> str:
    """The error's last line, with the line number in the reader's code when there is one."""
    where = ""
    for frame in traceback.extract_tb(e.__traceback__):
        if frame.filename == "<your code>":
            where = f" (line {frame.lineno})"
    if isinstance(e, SyntaxError) and e.lineno:
        where = f" (line {e.lineno})"
    return f"{type(e).__name__}{where}: {e}"


def run_snippet(code: str) -> Run:
    """Execute the reader's code, backpropagate from `out`, return the graph's output and inputs."""
    run = _execute(code)
    try:
        run.out.backward()
    except Exception as e:
        raise SnippetError(f"backward failed: {_describe(e)}") from None
    return run


def gradient_check(code: str, run: Run, h: float = STEP) -> GradCheckReport:
    """Compare each input's .grad (from run_snippet) with a central finite difference of `out`."""
    report = GradCheckReport()
    for i, v in enumerate(run.inputs):
        plus = _execute(code, (i, h)).out.data
        minus = _execute(code, (i, -h)).out.data
        report.checks.append(GradCheck(input_name(run, i), v.data, v.grad, (plus - minus) / (2 * h)))
    return report
