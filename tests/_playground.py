"""Driving the playground page from Playwright: shared by its tests and benchmarks/browser_playground.py.

    rec = open_playground(browser, server)      # a fresh context; status "ready" (else skip/fail)
    fill(page, steps=50, batch=4)               # form fields by name, firing `change`
    wait_state(page, FINISHED)                  # the status's data-state
    loss_log(page)                              # {"start_step", "losses": every step's loss, "timing"}
"""

from __future__ import annotations

import json

from _browser import open_page
from _require import require

STATUS = '[data-testid="status"]'
# Collects the main thread's long tasks (> 50 ms) from before the page's own scripts run.
LONG_TASKS = """
window.__longTasks = [];
try {
  new PerformanceObserver(list => { for (const e of list.getEntries()) window.__longTasks.push(
      {start: e.startTime, duration: e.duration}); }).observe({type: "longtask", buffered: true});
} catch (e) {}
"""
SETTLED = ("ready", "no-webgpu", "error")
FINISHED = ("done", "stopped", "error")


def open_playground(browser, server, init_script: str | None = LONG_TASKS):
    rec = open_page(browser, server.url("playground/"), timeout_ms=120_000, init_script=init_script)
    wait_ready(rec.page)
    return rec


def wait_ready(page) -> None:
    wait_state(page, SETTLED, 120_000)
    state = page.get_attribute(STATUS, "data-state")
    require(state != "no-webgpu", f"no WebGPU adapter in this Chromium: {page.text_content(STATUS)}")
    assert state == "ready", page.text_content(STATUS)


def fill(page, **values) -> None:
    """Set form fields by name and fire `change` (as a user leaving the field would)."""
    for name, value in values.items():
        field = page.locator(f'[name="{name}"]')
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(str(value))
        else:
            field.fill(str(value))
            field.dispatch_event("change")


def wait_state(page, states, timeout_ms: int = 240_000) -> str:
    page.wait_for_selector(", ".join(f'{STATUS}[data-state="{s}"]' for s in states), timeout=timeout_ms)
    return page.get_attribute(STATUS, "data-state")


def shown_step(page) -> int:
    return int(page.get_attribute('[data-testid="step-count"]', "data-step"))


def loss_log(page) -> dict:
    return json.loads(page.text_content('[data-testid="loss-log"]'))


MARKS = ("python", "ready", "data", "backend", "first-step")


def page_marks(page) -> dict[str, float]:
    """Seconds on the page's clock (from the navigation of the document that trains) at which Python
    started in the worker, the page became ready, the run's data was loaded, its GPU buffers made,
    and the GPU finished its first step (pipelines compile on the way)."""
    return {k: int(page.get_attribute(STATUS, f"data-{k}-ms")) / 1e3 for k in MARKS}


def long_tasks_since(page, since_ms: float) -> list[float]:
    """Durations (ms) of the main thread's long tasks that started at or after since_ms (page clock)."""
    return page.evaluate(f"window.__longTasks.filter(t => t.start >= {since_ms}).map(t => t.duration)")
