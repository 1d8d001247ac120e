"""tests/_require.py: skip locally, fail under CI=true."""

from __future__ import annotations

from pathlib import Path

import pytest

from _require import find_data_mirror, require


def test_require_passes_silently_when_condition_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    require(True, "never shown")


def test_require_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no widget"):
        require(False, "no widget")


def test_require_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI: no widget"):
        require(False, "no widget")


def test_data_mirror_prefers_the_environment_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "names.txt").write_text("emma\nolivia\n", encoding="utf-8")
    monkeypatch.setenv("TABGPT_DATA_MIRROR", str(tmp_path))
    assert find_data_mirror() == tmp_path.resolve()
