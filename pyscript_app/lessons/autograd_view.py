"""What the autograd lesson shows after a run, as HTML strings (the DOM glue sets them in one go)."""

from __future__ import annotations

from html import escape

from .autograd_run import ATOL, RTOL, GradCheckReport


def _num(x: float) -> str:
    return f"{x:.6g}"


def gradcheck_table(report: GradCheckReport) -> str:
    """<table>: each input's value, analytic grad (backward), numeric grad (finite differences), verdict."""
    rows = []
    for c in report.checks:
        verdict = "ok" if c.passed else "MISMATCH"
        rows.append(f'<tr data-verdict="{verdict}"><td><code>{escape(c.name)}</code></td><td>{_num(c.value)}</td>'
                    f"<td>{_num(c.analytic)}</td><td>{_num(c.numeric)}</td><td>{c.error:.2g}</td>"
                    f"<td><strong>{verdict}</strong></td></tr>")
    if not rows:
        rows.append('<tr><td colspan="6">Your code made no inputs with Value(...): nothing to check.</td></tr>')
    return ("<table><thead><tr><th>input</th><th>value</th><th>grad (backward)</th>"
            "<th>grad (finite differences)</th><th>|difference|</th><th></th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def verdict_text(report: GradCheckReport) -> str:
    """One line for the result badge, with the tolerance the check used."""
    n = len(report.checks)
    bad = sum(not c.passed for c in report.checks)
    detail = f"{n} input{'s' if n != 1 else ''}" + (f", {bad} mismatched" if bad else "")
    return f"{report.verdict} ({detail}; tolerance {ATOL:g} + {RTOL:g}·|numeric|)"
