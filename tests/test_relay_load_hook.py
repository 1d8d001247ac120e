"""site_src/hooks/relay_load.py: the relay's measured load, rendered from benchmarks/results/*.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from _hooks import load_hook
from _require import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"


@pytest.fixture(scope="module")
def hook() -> ModuleType:
    return load_hook("relay_load.py")


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A temporary copy of every committed relay result file."""
    folder = tmp_path / "results"
    folder.mkdir()
    for path in RESULTS.glob("relay-load-*.json"):
        shutil.copy(path, folder / path.name)
    return folder


def _newest_large_pair(hook, results: Path) -> Path:
    newest = hook.newest_runs(hook.load_runs(results))
    kinds = [k for k in newest if k[1] == "large" and k[3] == 2 and k[4]]
    assert kinds, "no committed `large` run on two relay processes"
    return newest[kinds[0]][0]


def test_a_changed_figure_changes_the_table(hook, results):
    target = _newest_large_pair(hook, results)
    before = hook.render(results)
    data = json.loads(target.read_text())
    data["loopback"]["aggregation_updates_per_s"] = 987.6
    target.write_text(json.dumps(data))
    after = hook.render(results)
    assert "| 988 |" in after and "| 988 |" not in before


def test_only_the_newest_file_of_each_kind_is_rendered(hook, results):
    data = json.loads(_newest_large_pair(hook, results).read_text())
    for name, date, rate in (("aa-newer.json", "2999-01-01T00:00:00+00:00", 4321.0),
                             ("zz-older.json", "2001-01-01T00:00:00+00:00", 1234.0)):
        (results / name).write_text(json.dumps({**data, "date": date,
                                                "loopback": {**data["loopback"], "aggregation_updates_per_s": rate}}))
    text = hook.render(results)
    assert "`aa-newer.json`" in text and "4321" in text
    assert "zz-older" not in text and "1234" not in text


def test_files_without_the_machine_s_cpu_are_not_rendered(hook, results):
    names = {p.name for p, _ in hook.load_runs(results)}
    older = [p.name for p in results.glob("*.json") if "machine_cpu_s_per_round" not in json.loads(p.read_text())["loopback"]]
    assert older and not names & set(older)
    assert not hook.newest_runs(hook.load_runs(results / "none")) and "No relay measurement" in hook.render(results / "none")


def test_a_broken_file_fails_the_build_naming_it(hook, results):
    from mkdocs.exceptions import PluginError

    (results / "relay-broken.json").write_text("{not json")
    with pytest.raises(PluginError, match="relay-broken.json"):
        hook.render(results)
    (results / "relay-broken.json").write_text(json.dumps({"model": "large", "aggregation": {}, "loopback": [1]}))
    with pytest.raises(PluginError, match="relay-broken.json"):
        hook.render(results)


def test_the_page_marker_is_replaced_by_the_tables(hook):
    page = (REPO_ROOT / "site_src" / "federated-protocol.md").read_text()
    assert hook.MARKER.search(page), "the relay page lost its <!-- relay:load --> marker"

    class Config:
        config_file_path = str(REPO_ROOT / "mkdocs.yml")

    out = hook.on_page_markdown(page, None, Config(), None)
    assert "<!-- relay:load -->" not in out and "| model, clients | relay |" in out
