"""DOM helpers shared by the lesson pages' worker scripts (PyScript worker: DOM through pyscript.document).

Every DOM access from a worker is a synchronous round trip to the main thread, so pages build
HTML in Python (pyscript_app/lessons/*_view.py) and set it in one assignment.

Each lesson page has an element with data-testid="lesson-status" whose data-state goes
"ready" once its Python is running (the browser tests wait on it), "busy" while it computes,
"error" (with the message) when something failed.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from pyodide.ffi import create_proxy

from pyscript_app.browser.dom import by_testid, set_text, site_url  # noqa: F401 (re-exported for the lessons)

STATUS = "lesson-status"
_kept: list[Any] = []  # event-handler proxies and tasks: anything JS or asyncio must not lose
_tasks: set[asyncio.Task] = set()


def set_html(testid: str, html: str) -> None:
    by_testid(testid).innerHTML = html


def value_of(testid: str) -> str:
    return str(by_testid(testid).value)


def int_value(testid: str, low: int, high: int, default: int) -> int:
    """An <input>'s integer value clamped to [low, high] (default when it does not parse)."""
    try:
        return max(low, min(high, int(float(value_of(testid)))))
    except ValueError:
        return default


def float_value(testid: str, low: float, high: float, default: float) -> float:
    try:
        value = float(value_of(testid))
    except ValueError:
        return default
    return max(low, min(high, value)) if value == value else default


def status(state: str, text: str) -> None:
    element = by_testid(STATUS)
    element.setAttribute("data-state", state)
    element.textContent = text


def spawn(coro: Awaitable[None]) -> None:
    """Run a coroutine in the background, keeping a reference (asyncio may collect unreferenced tasks)."""
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def on(testid: str, event: str, handler: Callable[[], Awaitable[None] | None]) -> None:
    """Call handler() on `event` of the element; a coroutine handler runs as a task, errors go to the status."""
    async def guarded() -> None:
        try:
            result = handler()
            if asyncio.iscoroutine(result):
                await result
        except Exception as e:  # noqa: BLE001 - shown on the page, then re-raised for the console
            status("error", f"{type(e).__name__}: {e}")
            raise

    proxy = create_proxy(lambda _event: spawn(guarded()))
    _kept.append(proxy)
    by_testid(testid).addEventListener(event, proxy)


def enable(*testids: str) -> None:
    for testid in testids:
        by_testid(testid).disabled = False


def start(boot: Callable[[], Awaitable[None]]) -> None:
    """Run the page's boot coroutine; a failure shows on the page (and in the console)."""
    async def main() -> None:
        try:
            await boot()
        except Exception as e:
            status("error", f"This lesson's Python could not start: {type(e).__name__}: {e}")
            raise

    spawn(main())
