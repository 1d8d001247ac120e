"""`mkdocs build --strict` works and the built site carries everything the browser needs offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _require import REPO_ROOT, require

NODE_MODULES = REPO_ROOT / "node_modules"


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require((NODE_MODULES / "pyodide").is_dir(), "node_modules missing: run `npm ci` (make test does)")
    require(_has_mkdocs(), "mkdocs is not installed (pip install -e '.[test]')")
    site_dir = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"mkdocs build failed:\n{result.stdout}\n{result.stderr}"
    return site_dir


def _has_mkdocs() -> bool:
    from _require import module_available

    return module_available("mkdocs") and module_available("material")


def test_home_page_is_built(built_site: Path) -> None:
    assert "tabgpt" in (built_site / "index.html").read_text(encoding="utf-8")


def test_hooks_are_not_published_as_pages(built_site: Path) -> None:
    assert not (built_site / "hooks").exists()


def test_pyodide_runtime_is_vendored_byte_for_byte(built_site: Path) -> None:
    vendored = built_site / "assets" / "vendor" / "pyodide"
    for name in ("pyodide.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"):
        assert (vendored / name).read_bytes() == (NODE_MODULES / "pyodide" / name).read_bytes(), name
    assert (vendored / "pyodide.asm.mjs").exists() or (vendored / "pyodide.asm.js").exists()
    # The loader carries its version as a string literal; it must be the one package-lock.json pins.
    assert f'"{_locked_version("pyodide")}"' in (vendored / "pyodide.mjs").read_text(encoding="utf-8")


def test_pyscript_is_vendored_without_source_maps(built_site: Path) -> None:
    vendored = built_site / "assets" / "vendor" / "pyscript"
    assert (vendored / "core.js").is_file()
    assert (vendored / "core.css").is_file()
    assert not list(vendored.rglob("*.map"))


def test_mini_coi_service_worker_sits_at_the_site_root(built_site: Path) -> None:
    text = (built_site / "mini-coi.js").read_text(encoding="utf-8")
    assert "Cross-Origin-Embedder-Policy" in text


def test_python_and_shaders_are_copied_and_listed(built_site: Path) -> None:
    expected = sorted(
        [p.relative_to(REPO_ROOT).as_posix() for suffix in ("*.py", "*.js")
         for p in (REPO_ROOT / "pyscript_app").rglob(suffix) if "__pycache__" not in p.parts]
        + [p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "shaders").glob("*.wgsl")]
    )
    manifest = json.loads((built_site / "py" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["files"] == expected
    assert "pyscript_app/config.py" in expected and "pyscript_app/browser/step_replay.js" in expected
    for relative in expected:
        assert (built_site / "py" / relative).read_bytes() == (REPO_ROOT / relative).read_bytes(), relative


def _locked_version(package: str) -> str:
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text(encoding="utf-8"))
    return lock["packages"][f"node_modules/{package}"]["version"]


def test_measured_sections_are_rendered_from_the_newest_result_files(built_site: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("tabgpt_measured_hook", REPO_ROOT / "site_src/hooks/measured.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    results = hook.load_results(REPO_ROOT / "benchmarks/results")
    bench = (built_site / "bench" / "index.html").read_text(encoding="utf-8")
    assert "measured:" not in bench and 'data-testid="run-bench"' in bench
    newest = hook.newest_bench(results)
    assert newest
    for r in newest:
        _, device, engine = hook.bench_kind(r.data)
        assert f"{device} · {engine}" in bench and r.path.name in bench
        for step in r.data["steps"]:
            assert f"<td>{step['model']}</td>" in bench
    for page, files in (("federated", [r.path.name for r in hook.newest_federated(results)]),
                        ("playground", [r.path.name for r, _ in hook.newest_playground(results)])):
        html = (built_site / page / "index.html").read_text(encoding="utf-8")
        assert files and all(name in html for name in files) and "measured:" not in html, page
