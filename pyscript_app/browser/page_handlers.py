"""What every interactive page's worker does with its DOM events: handlers kept alive, run as tasks,
their unexpected failures shown in the page's `status` line (Pyodide only)."""

from __future__ import annotations

import asyncio

from pyodide.ffi import create_proxy

from pyscript_app.browser.dom import by_testid


class PageHandlers:
    def __init__(self) -> None:
        self._proxies = []  # event handlers stay alive as long as the page
        self._tasks: set[asyncio.Task] = set()

    def listen(self, element, event: str, handler) -> None:
        proxy = create_proxy(lambda ev: self.spawn(self.guarded(handler(ev))))
        self._proxies.append(proxy)
        element.addEventListener(event, proxy)

    async def guarded(self, coro) -> None:
        """A handler's unexpected failure still gets a line in the status (and the console)."""
        try:
            await coro
        except Exception as e:
            self.set_status(f"Unexpected error: {type(e).__name__}: {e}", "error")
            raise

    def spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def set_status(self, text: str, state: str) -> None:
        status = by_testid("status")
        status.setAttribute("data-state", state)
        status.textContent = text
