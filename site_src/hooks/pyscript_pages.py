"""mkdocs hook: turn a page into a PyScript page whose Python runs in a Web Worker.

A page opts in with front matter naming its worker script (a module under pyscript_app/):

    ---
    pyscript_worker: pyscript_app/browser/bench_page.py
    ---

and gets, with URLs relative to the page (the site may live under a sub-path):
  - `<script src="mini-coi.js" scope="./">` as the FIRST child of <head>: its service worker adds
    COOP/COEP headers, so the page is cross-origin isolated (a PyScript worker needs that to reach
    the DOM synchronously) even on servers that send none (`mkdocs serve`, GitHub Pages);
  - `<meta name="tabgpt-root" content="../">`: the site root relative to the page, for the worker's
    fetches (py/refvectors/, data files);
  - PyScript's core.css / core.js from assets/vendor/pyscript/;
  - `<script type="py" worker src=".../py/<pyscript_worker>" config=".../py/pyscript.json">` at the
    end of <body>.

After the build, py/pyscript.json is written from py/manifest.json (the assets hook's list): the
interpreter is the vendored Pyodide, and every pyscript_app/*.py and shaders/*.wgsl is placed in the
worker's virtual FS at the same relative path (so `import pyscript_app...` and registry.shader_source
work unchanged). They travel as ONE archive, py/app.zip (PyScript unpacks a "files" entry whose
destination ends in "/*"): one request instead of one per file (~120), which PyScript otherwise
fetches and writes one by one before the worker's Python starts. The files stay in py/ as well (the
worker script itself and the lessons' source views fetch them). Must come AFTER assets.py in
mkdocs.yml's `hooks:`.
"""

from __future__ import annotations

import html
import json
import zipfile
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.pages import Page
from mkdocs.utils import get_relative_url

CONFIG_PATH = "py/pyscript.json"
MANIFEST_PATH = "py/manifest.json"
ARCHIVE_PATH = "py/app.zip"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # every member's timestamp: the same sources give the same bytes
INTERPRETER = "assets/vendor/pyodide/pyodide.mjs"
FRONT_MATTER_KEY = "pyscript_worker"


def pyscript_config() -> dict:
    """PyScript config for py/pyscript.json; URLs are relative to that file, paths to the worker's cwd:
    the archive of the manifest's files is unpacked into the cwd, keeping their relative paths."""
    return {
        "interpreter": get_relative_url(INTERPRETER, CONFIG_PATH),
        "files": {f"./{get_relative_url(ARCHIVE_PATH, CONFIG_PATH)}": "./*"},
    }


def write_archive(py_dir: Path, relative_paths: list[str], archive: Path) -> None:
    """Zip py_dir/<path> for each manifest path, stored under <path>, in manifest order."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in relative_paths:
            info = zipfile.ZipInfo(path, ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, (py_dir / path).read_bytes())


def head_and_body_tags(page_url: str, worker_script: str) -> tuple[str, str]:
    """(tags for the start of <head>, tag for the end of <body>) of a page at page_url."""
    def rel(target: str) -> str:
        return html.escape(get_relative_url(target, page_url))

    root = get_relative_url(".", page_url)
    root = root if root.endswith("/") else root + "/"
    head = (f'<script src="{rel("mini-coi.js")}" scope="./"></script>\n'
            f'<meta name="tabgpt-root" content="{html.escape(root)}">\n'
            f'<link rel="stylesheet" href="{rel("assets/vendor/pyscript/core.css")}">\n'
            # PyScript starts only once the page is cross-origin isolated: on a first visit mini-coi
            # reloads the page after its service worker is active, and a PyScript started before that
            # reload could fall back to its default (CDN) interpreter while its config fetch is cut off.
            f'<script type="module">if (self.crossOriginIsolated) '
            f'import(new URL({json.dumps(get_relative_url("assets/vendor/pyscript/core.js", page_url))}, '
            f'document.baseURI).href);</script>\n')
    body = (f'<script type="py" worker src="{rel("py/" + worker_script)}" '
            f'config="{rel(CONFIG_PATH)}"></script>\n')
    return head, body


def on_post_page(output: str, page: Page, config: MkDocsConfig) -> str:
    worker_script = page.meta.get(FRONT_MATTER_KEY)
    if not worker_script:
        return output
    if not (Path(config.config_file_path).resolve().parent / worker_script).is_file():
        raise PluginError(f"{page.file.src_uri}: {FRONT_MATTER_KEY} {worker_script!r} does not exist")
    head, body = head_and_body_tags(page.url, worker_script)
    start = output.find("<head>")
    end = output.rfind("</body>")
    if start < 0 or end < 0:
        raise PluginError(f"{page.file.src_uri}: no <head> / </body> to put PyScript in")
    start += len("<head>")
    return output[:start] + "\n" + head + output[start:end] + body + output[end:]


def on_post_build(config: MkDocsConfig) -> None:
    site_dir = Path(config.site_dir)
    manifest = json.loads((site_dir / MANIFEST_PATH).read_text(encoding="utf-8"))
    write_archive(site_dir / "py", manifest["files"], site_dir / ARCHIVE_PATH)
    (site_dir / CONFIG_PATH).write_text(json.dumps(pyscript_config(), indent=1) + "\n", encoding="utf-8")
