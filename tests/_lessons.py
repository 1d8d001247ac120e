"""Helpers shared by the lesson pages' browser tests (test_browser_lessons*.py)."""

from __future__ import annotations

import time

from _browser import open_page

STATUS = '[data-testid="lesson-status"]'


def tid(testid: str) -> str:
    return f'[data-testid="{testid}"]'


def open_lesson(browser, site_server, name: str):
    """The lesson page with its Python running (status "ready"; "no-webgpu" is returned to the caller)."""
    t0 = time.perf_counter()
    rec = open_page(browser, site_server.url(f"lessons/{name}/"), timeout_ms=120_000)  # a busy 2-core CI box
    rec.page.wait_for_selector(f'{STATUS}:is([data-state="ready"], [data-state="error"], [data-state="no-webgpu"])')
    state = rec.page.get_attribute(STATUS, "data-state")
    assert state != "error", rec.page.text_content(STATUS)
    print(f"\n[{name}] Python ready {time.perf_counter() - t0:.1f} s after goto", end="")
    return rec
