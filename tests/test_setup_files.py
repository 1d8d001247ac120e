"""The project's setup files agree with each other: pins, console script, markers, make targets, CI."""

from __future__ import annotations

import json
import os
import re
import tomllib

from _require import REPO_ROOT

PINNED_NPM = {"pyodide": "314.0.7", "@pyscript/core": "0.7.31"}


def test_npm_runtimes_are_pinned_exactly_and_locked() -> None:
    declared = json.loads((REPO_ROOT / "package.json").read_text(encoding="utf-8"))["dependencies"]
    locked = json.loads((REPO_ROOT / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    for name, version in PINNED_NPM.items():
        assert declared[name] == version
    for name in ("pyodide", "@pyscript/core", "mini-coi"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", declared[name]), f"{name} must be an exact version"
        assert locked[f"node_modules/{name}"]["version"] == declared[name]


def test_pyproject_declares_cli_markers_and_version_source() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["name"] == "tabgpt"
    assert pyproject["project"]["scripts"]["tabgpt"] == "pyscript_app.cli:main"
    markers = {m.split(":")[0] for m in pyproject["tool"]["pytest"]["ini_options"]["markers"]}
    assert {"gpu", "browser"} <= markers
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "pyscript_app.__version__"


def test_makefile_offers_serve_and_test_on_top_of_setup() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^serve: setup$", makefile, re.M)
    assert re.search(r"^test: setup$", makefile, re.M)
    assert "mkdocs serve" in makefile and "-m pytest" in makefile


def test_ci_script_is_strict_executable_and_runs_make_test() -> None:
    script = REPO_ROOT / ".ci" / "run"
    text = script.read_text(encoding="utf-8")
    assert os.access(script, os.X_OK)
    assert "set -euo pipefail" in text
    assert "TABGPT_DATA_MIRROR" in text
    assert text.rstrip().splitlines()[-1].startswith("make test")
