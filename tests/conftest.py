"""Shared pytest wiring: `gpu` / `browser` markers and the fixtures that locate Chromium and the data.

Tests marked `gpu` need wgpu-py importable; tests marked `browser` need Chromium and Playwright.
Missing pieces skip locally and fail under CI=true (see _require.require). Whether a WebGPU *adapter*
exists is for the GPU host's own fixture to require(), since only it knows how to ask.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _require import REPO_ROOT, find_chromium, find_data_mirror, module_available, require


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None:
        require(module_available("wgpu"), "wgpu-py is not installed (pip install -e '.[test]')")
    if item.get_closest_marker("browser") is not None:
        require(find_chromium() is not None, "Chromium not found (apt-get install chromium)")
        require(module_available("playwright"), "playwright (Python) is not installed")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Executable for Playwright's `chromium.launch(executable_path=...)`; never `playwright install`."""
    path = find_chromium()
    require(path is not None, "Chromium not found at /usr/bin/chromium or on PATH (apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def data_mirror() -> Path:
    """Folder holding the raw names.txt / shakespeare.txt ($TABGPT_DATA_MIRROR or ../shared/data)."""
    folder = find_data_mirror()
    require(folder is not None, "no data mirror: set TABGPT_DATA_MIRROR to a folder with names.txt/shakespeare.txt")
    return folder
