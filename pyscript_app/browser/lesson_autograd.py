"""The autograd lesson's Python (PyScript worker). Logic: lessons/autograd*.py.

Run: execute the reader's code (the textarea), backpropagate from `out`, draw the graph, check every
input's gradient against finite differences. Runs once on boot, then on every click of Run.
"""

from __future__ import annotations

from pyscript_app.browser.lesson_dom import by_testid, enable, on, set_html, set_text, start, status, value_of
from pyscript_app.lessons.autograd_graph import graph_svg
from pyscript_app.lessons.autograd_run import SnippetError, gradient_check, run_snippet
from pyscript_app.lessons.autograd_view import gradcheck_table, verdict_text


def run() -> None:
    status("busy", "Running your code…")
    code = value_of("code")
    verdict = by_testid("gradcheck-verdict")
    try:
        result = run_snippet(code)
        report = gradient_check(code, result)
    except SnippetError as e:
        set_text("run-error", str(e))
        set_html("graph", "")
        set_html("gradcheck", "")
        verdict.setAttribute("data-passed", "error")
        verdict.textContent = "your code did not run: see the message above"
        status("ready", "Ready.")
        return
    set_text("run-error", "")
    set_text("out-value", f"out = {result.out.data:.6g}")
    set_html("graph", graph_svg(result.out, result.names))
    set_html("gradcheck", gradcheck_table(report))
    verdict.setAttribute("data-passed", "true" if report.passed else "false")
    verdict.textContent = verdict_text(report)
    status("ready", "Ready.")


async def boot() -> None:
    run()
    on("run-button", "click", run)
    enable("run-button")


start(boot)
