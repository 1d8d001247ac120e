"""DOM access shared by every page's worker script (a PyScript worker reaches the page's DOM through
pyscript.document; every access is a synchronous round trip to the main thread).

Elements are found by their data-testid (CONTRACTS §3: the browser tests use the same ids).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urljoin

from pyscript import document, window


def by_testid(testid: str) -> Any:
    element = document.querySelector(f'[data-testid="{testid}"]')
    if element is None:
        raise LookupError(f'the page has no element data-testid="{testid}"')
    return element


def set_text(testid: str, text: str) -> None:
    by_testid(testid).textContent = text


def site_url(path: str) -> str:
    """Absolute URL of a site file (worker fetches do not resolve against the page)."""
    root = document.querySelector('meta[name="tabgpt-root"]').getAttribute("content")
    return urljoin(urljoin(str(window.location.href), root), path)


def start_page(boot: Callable[[], Awaitable[None]], status_testid: str, what: str) -> asyncio.Future:
    """Run a page's boot in the background. If it fails, the status element says "<what> could not
    start: ..." with data-state="error" (what the user and the browser tests see), and the error is
    raised again for the console. Keep the returned task referenced: asyncio may collect a task
    nobody holds."""

    async def main() -> None:
        try:
            await boot()
        except Exception as e:
            status = by_testid(status_testid)
            status.textContent = f"{what} could not start: {type(e).__name__}: {e}"
            status.setAttribute("data-state", "error")
            raise

    return asyncio.ensure_future(main())
