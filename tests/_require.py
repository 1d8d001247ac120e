"""Skip locally, fail in CI: the one rule for tests that need something the machine may lack.

A developer without Chromium or a WebGPU adapter still gets a green local run (with skips listed
by `-ra`); CI (CI=true) must have everything, so a missing dependency there is a failure, never a
silent skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def require(condition: bool, reason: str) -> None:
    """Do nothing when `condition` holds; else skip the test (locally) or fail it (CI=true)."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    """Path of the system Chromium (Debian package `chromium`), or None."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_data_mirror() -> Path | None:
    """The folder with names.txt / shakespeare.txt: $TABGPT_DATA_MIRROR, else ../shared/data beside the repo."""
    configured = os.environ.get("TABGPT_DATA_MIRROR")
    candidates = [Path(configured)] if configured else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for folder in candidates:
        if folder.is_dir():
            return folder.resolve()
    return None


def module_available(name: str) -> bool:
    """True when `import name` would find the module (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
