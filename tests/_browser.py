"""Browser test fixtures: the built site on a plain static server, and headless Chromium with WebGPU.

    from _browser import browser, site_server, open_page   # browser / site_server are fixtures

- `built_site`: `mkdocs build --strict` into a temp folder, once per module.
- `site_server`: a threaded http.server on 127.0.0.1 (a free port) serving it. It sends NO COOP/COEP
  headers, as `mkdocs serve` and GitHub Pages do: pages must become cross-origin isolated through
  mini-coi's service worker, so the tests exercise that path.
- `browser`: the system Chromium (never `playwright install`) with WebGPU enabled
  (--enable-unsafe-webgpu; on machines without a GPU Chromium falls back to SwiftShader on the CPU).
- `open_page(browser, url)`: a fresh context (no service worker left from another test) whose every
  request, console error and page error is recorded; assert_clean() checks them.
Missing Chromium / Playwright / node_modules: skip locally, fail with CI=true (_require.require).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from _require import REPO_ROOT, find_chromium, module_available, require

# Dawn's workgroup-memory zero-fill: WGSL zero-initializes var<workgroup>; where the Vulkan driver
# cannot (SwiftShader here) Dawn adds the zeroing to every shader, which SwiftShader compiles at
# about 2 ms per vec4 of workgroup memory: a nano run's 22 pipelines took 21-25 s instead of 2-3 s,
# and every workgroup of a step paid for the zeroing (2026-11-22, this machine). Our kernels write
# their workgroup memory before reading it (the bench page's correctness gate passes without the
# fill), so the tests and the benchmark run without it. DEFAULT_CHROMIUM_ARGS is a user's browser
# (benchmarks/browser_playground.py --default-chromium measures it).
NO_WORKGROUP_ZERO_FILL = "--enable-dawn-features=disable_workgroup_init"
DEFAULT_CHROMIUM_ARGS = (
    "--headless=new", "--no-sandbox", "--enable-unsafe-webgpu",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-default-apps",
)
CHROMIUM_ARGS = DEFAULT_CHROMIUM_ARGS + (NO_WORKGROUP_ZERO_FILL,)


def build_site(site_dir: Path) -> Path:
    require((REPO_ROOT / "node_modules" / "pyodide").is_dir(), "node_modules missing: run `npm ci` (make test does)")
    require(module_available("mkdocs") and module_available("material"), "mkdocs / mkdocs-material not installed")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=180,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"mkdocs build failed:\n{result.stdout}\n{result.stderr}"
    return site_dir


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@dataclass
class StaticServer:
    root: Path
    httpd: ThreadingHTTPServer
    requests: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str = "") -> str:
        return f"{self.origin}/{path.lstrip('/')}"


def serve_directory(root: Path) -> StaticServer:
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, name="site-server", daemon=True).start()
    return StaticServer(root, httpd)


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_site(tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def site_server(built_site: Path):
    server = serve_directory(built_site)
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture(scope="module")
def playwright_instance():
    require(module_available("playwright"), "playwright (Python) is not installed")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    yield pw
    pw.stop()


def launch_chromium(playwright_instance, webgpu: bool = True):
    path = find_chromium()
    require(path is not None, "Chromium not found at /usr/bin/chromium or on PATH (apt-get install chromium)")
    args = [a for a in CHROMIUM_ARGS if webgpu or a != "--enable-unsafe-webgpu"]
    return playwright_instance.chromium.launch(executable_path=path, args=args)


@pytest.fixture(scope="module")
def browser(playwright_instance):
    b = launch_chromium(playwright_instance)
    yield b
    b.close()


@dataclass
class RecordedPage:
    """A page in its own context, with everything it asked for and complained about."""

    context: object
    page: object
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def foreign_requests(self, origin: str) -> list[str]:
        """Requests that did not go to `origin` (data: and blob: URLs are not network requests)."""
        return [u for u in self.requests
                if urlsplit(u).scheme not in ("data", "blob") and not u.startswith(origin + "/")]

    def assert_clean(self, origin: str) -> None:
        assert self.requests, "no request was recorded"
        assert not self.foreign_requests(origin), f"requests left {origin}: {self.foreign_requests(origin)}"
        assert not self.console_errors, f"console errors: {self.console_errors}"
        assert not self.page_errors, f"page errors: {self.page_errors}"

    def close(self) -> None:
        self.context.close()


def open_page(browser, url: str, timeout_ms: int = 60_000, init_script: str | None = None) -> RecordedPage:
    """init_script: JavaScript run in every document of the context before its own scripts."""
    context = browser.new_context()  # fresh: mini-coi registers its service worker and reloads
    context.set_default_timeout(timeout_ms)
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    rec = RecordedPage(context, page)
    context.on("request", lambda r: rec.requests.append(r.url))  # pages, workers and service workers
    page.on("console", lambda m: rec.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: rec.page_errors.append(str(e)))
    page.goto(url)
    return rec
