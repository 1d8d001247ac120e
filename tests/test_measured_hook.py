"""site_src/hooks/measured.py: the pages' "Measured" sections, rendered from benchmarks/results/*.json."""

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
    return load_hook("measured.py")


def _bench_files() -> list[Path]:
    return [p for p in sorted(RESULTS.glob("*.json"))
            if isinstance(d := json.loads(p.read_text()), dict) and d.get("backend") in ("gpu", "numpy")]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A temporary copy of every committed result file."""
    folder = tmp_path / "results"
    shutil.copytree(RESULTS, folder, ignore=shutil.ignore_patterns("quality"))
    return folder


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_changed_figure_changes_the_bench_section(hook, results):
    newest = [r.path.name for r in hook.newest_bench(hook.load_results(results))]
    assert newest, "no tabgpt bench result file is committed"
    before = hook.render_bench(results)
    target = results / newest[0]
    _edit(target, lambda d: d["steps"][-1].update(ours_ms=987.654, ratio_ours_over_torch=42.5))
    after = hook.render_bench(results)
    assert after != before
    assert "987.65" in after and "42.50" in after and "987.65" not in before


def test_only_the_newest_file_of_each_kind_is_rendered(hook, results):
    first = hook.newest_bench(hook.load_results(results))[0]
    data = json.loads(first.path.read_text())
    older = dict(data, date="2001-01-01T00:00:00+00:00", command="tabgpt bench --OLDER")
    newer = dict(data, date="2999-01-01T00:00:00+00:00", command="tabgpt bench --NEWER")
    (results / "zz-older.json").write_text(json.dumps(older))
    (results / "aa-newer.json").write_text(json.dumps(newer))  # the name sorts first: the date decides
    text = hook.render_bench(results)
    assert "--NEWER" in text and "--OLDER" not in text
    assert text.count(f"### {hook.bench_kind(data)[1]} · {hook.bench_kind(data)[2]}") == 1
    # another device is another kind, rendered beside it
    other = dict(data, adapter={**data.get("adapter", {}), "device": "Imaginary GPU 9000"},
                 command="tabgpt bench --OTHER")
    (results / "other.json").write_text(json.dumps(other))
    assert "--OTHER" in hook.render_bench(results) and "Imaginary GPU 9000" in hook.render_bench(results)


def test_without_a_recorded_date_the_file_name_dates_it(hook, tmp_path):
    data = json.loads(_bench_files()[0].read_text())
    for name, cmd in (("run-2026-01-01.json", "--JANUARY"), ("run-2026-02-01.json", "--FEBRUARY")):
        d = {k: v for k, v in data.items() if k != "date"}
        (tmp_path / name).write_text(json.dumps(dict(d, command=f"tabgpt bench {cmd}")))
    text = hook.render_bench(tmp_path)
    assert "--FEBRUARY" in text and "--JANUARY" not in text
    assert "2026-02-01" in text


def test_missing_driver_and_command_render_as_a_dash(hook, tmp_path):
    data = json.loads(next(p for p in _bench_files() if "gpu" in p.name).read_text())
    data.pop("command")
    data["adapter"].pop("description")
    (tmp_path / "bare.json").write_text(json.dumps(data))
    text = hook.render_bench(tmp_path)
    assert "- **driver:** —" in text and "- **command:** —" in text


def test_a_malformed_result_file_fails_with_its_name(hook, results):
    from mkdocs.exceptions import PluginError

    (results / "broken-2026-12-31.json").write_text('{"backend": "gpu", "steps": [')
    with pytest.raises(PluginError, match="broken-2026-12-31.json.*not valid JSON"):
        hook.render_bench(results)
    (results / "broken-2026-12-31.json").write_text(json.dumps({"backend": "gpu", "steps": {"not": "a list"}}))
    with pytest.raises(PluginError, match="broken-2026-12-31.json.*steps"):
        hook.render_bench(results)


def test_federated_and_playground_sections_follow_their_files(hook, results):
    fed = hook.newest_federated(hook.load_results(results))
    play = hook.newest_playground(hook.load_results(results))
    assert fed and play
    before = hook.render_federated(results), hook.render_playground(results)
    _edit(fed[0].path, lambda d: d["val_nats_per_byte"].update(federated_2_clients=9.876))
    file, runs = play[0]

    def slower(d):
        for _, run in hook._playground_runs(d):
            if hook.playground_kind(run) == hook.playground_kind(runs[0][1]):
                run["browser"]["first_step_s"] = 99.5
    _edit(file.path, slower)
    after = hook.render_federated(results), hook.render_playground(results)
    assert "9.876" in after[0] and "9.876" not in before[0]
    assert "99.5 s" in after[1] and "99.5 s" not in before[1]


def test_playground_host_times_get_their_table(hook, tmp_path):
    run = {"date": "2026-12-07", "form": {"model": "small", "dataset": "names", "batch": 8, "steps": 30},
           "browser": {"adapter": "swiftshader", "chromium_args": [], "host_ms_per_step": 0.2468,
                       "reload": {"host_ms_per_step": 0.5}, "dispatches_per_step": 59, "ms_per_step": 123.4,
                       "host_share": 0.031, "python_replay": {"host_ms_per_step": 2.9, "losses_equal": True}},
           "native": {"adapter": "llvmpipe", "host_ms_per_step": 1.5, "encode_ms_per_step": 1.1},
           "host_goal_ms": 0.418, "host_ratio_to_native": 0.16}
    (tmp_path / "playground-2026-12-07.json").write_text(json.dumps({"runs": {"small": run}}))
    out = hook.render_playground(tmp_path)
    row = next(line for line in out.splitlines() if "**0.25**" in line)
    for cell in ("| small |", "| 59 |", "| 0.50 |", "| 2.90 |", "| 1.50 (1.10) |", "| 0.418 |", "| 0.16 |",
                 "| 123.4 |", "| 3 % |", "| yes |"):
        assert cell in row, cell
    del run["browser"]["host_ms_per_step"]  # an older file: no host table
    (tmp_path / "playground-2026-12-07.json").write_text(json.dumps({"runs": {"small": run}}))
    assert "Host time per training step" not in hook.render_playground(tmp_path)


def test_markers_are_replaced_and_unknown_ones_refused(hook, results):
    from mkdocs.exceptions import PluginError

    page = (REPO_ROOT / "site_src/bench.md").read_text(encoding="utf-8")
    assert "<!-- measured:bench -->" in page
    out = hook.replace_markers(page, results)
    assert "<!-- measured:" not in out and "| model |" in out
    with pytest.raises(PluginError, match="measured:nonsense"):
        hook.replace_markers("x\n<!-- measured:nonsense -->\n", results, where="page.md")


def test_each_page_has_its_marker_and_the_bench_page_is_short():
    for page, marker in (("bench.md", "bench"), ("federated.md", "federated"), ("playground.md", "playground")):
        assert f"<!-- measured:{marker} -->" in (REPO_ROOT / "site_src" / page).read_text(encoding="utf-8"), page
    bench = (REPO_ROOT / "site_src/bench.md").read_text(encoding="utf-8")
    assert len(bench.splitlines()) <= 250
    # the interactive part the browser test and the PyScript hook rely on
    assert "pyscript_worker: pyscript_app/browser/bench_page.py" in bench
    for testid in ("run-bench", "bench-summary", "bench-status", "bench-cases", "bench-timings", "bench-steps",
                   "bench-profile", "bench-download"):
        assert f'data-testid="{testid}"' in bench, testid


def _inference_result(date: str, ms: float) -> dict:
    return {"backend": "gpu", "engine": "dawn", "date": date, "command": "tabgpt bench --inference gpt2",
            "adapter": {"device": "NVIDIA H100", "vendor": "nvidia", "description": "nvidia: 580.1"},
            "gate": [{"name": "c", "passed": True}], "versions": {"torch": "2.11"},
            "inference": {"model": "gpt2", "dtype": "f32", "prompt_tokens": 32, "new_tokens": 256,
                          "step_weight_bytes": 497e6, "memory_gb_s": 3000.0, "floor_ms_per_token": 0.166,
                          "ours": {"first_token_ms": 9.5, "ms_per_token": ms},
                          "transformers": {"device": "NVIDIA H100", "transformers": "5.1", "first_token_ms": 8.0,
                                           "ms_per_token": 7.5},
                          "ratio_ms_per_token": ms / 7.5, "over_floor": ms / 0.166, "ids_agree": 256}}


def test_the_inference_section_renders_the_newest_file_and_follows_its_figures(hook, tmp_path):
    (tmp_path / "old.json").write_text(json.dumps(_inference_result("2026-01-01T00:00:00+00:00", 99.0)))
    (tmp_path / "new.json").write_text(json.dumps(_inference_result("2026-02-01T00:00:00+00:00", 3.25)))
    page = hook.render_inference(tmp_path)
    assert "NVIDIA H100" in page and "3.25" in page and "99.0" not in page and "256 of 256" in page
    assert "580.1" in page and "`tabgpt bench --inference gpt2`" in page
    _edit(tmp_path / "new.json", lambda d: d["inference"]["ours"].update(ms_per_token=4.75))
    assert "4.75" in hook.render_inference(tmp_path)
    assert "No `tabgpt bench --inference`" in hook.render_inference(tmp_path / "none")


def test_the_inference_page_section_follows_its_newest_file(hook, tmp_path):
    run = {"kind": "browser-inference", "chromium": "150.0", "model": "GPT-2 124M", "backend": "SwiftShader",
           "load_s": 29.5, "first_token_ms": 11100.0, "ms_per_token": 9900.0, "new_tokens": 8,
           "command": "python3 benchmarks/browser_inference.py --new-tokens 8"}
    (tmp_path / "a.json").write_text(json.dumps(dict(run, date="2026-01-01", ms_per_token=1.0)))
    (tmp_path / "b.json").write_text(json.dumps(dict(run, date="2026-02-01")))
    page = hook.render_inference_page(tmp_path)
    assert "9900.00" in page and "29.5" in page and "`b.json`" in page and "`a.json`" not in page
    assert "<!-- measured:inferencepage -->" in (REPO_ROOT / "site_src" / "inference.md").read_text()


def _nodegpu_files() -> list[Path]:
    return [p for p in sorted(RESULTS.glob("*.json"))
            if isinstance(d := json.loads(p.read_text()), dict) and isinstance(d.get("page_host"), dict)]


def test_the_node_gpu_section_follows_its_newest_file(hook, results):
    files = _nodegpu_files()
    assert files, "no benchmarks/node_gpu_playground.py result file is committed"
    before = hook.render_nodegpu(results, REPO_ROOT)
    data = json.loads(files[-1].read_text())
    assert data["command"] in before and files[-1].name in before
    assert data["native_host"]["adapter_info"]["device"] in before
    assert f"{data['table'][0]['page_tokens_per_s']:,.0f}" in before
    target = results / files[-1].name

    def changed(d):
        d["table"][0].update(page_tokens_per_s=123456.0, ratio=0.25, meets_goal=False)
        d["table"][0]["losses_timed"].update(equal=False, max_rel_diff=3e-3)
    _edit(target, changed)
    after = hook.render_nodegpu(results)
    assert after != before
    assert "123,456" in after and "**0.25**" in after and "(**missed**)" in after and "3.0e-03" in after
    assert "123,456" not in before
    older = dict(json.loads(target.read_text()), date="2001-01-01T00:00:00+00:00", command="OLDER")
    (results / "node-gpu-older.json").write_text(json.dumps(older))
    assert "OLDER" not in hook.render_nodegpu(results)
    assert "No `benchmarks/node_gpu_playground.py`" in hook.render_nodegpu(results / "none")


def test_a_malformed_node_gpu_file_fails_with_its_name(hook, results):
    from mkdocs.exceptions import PluginError

    (results / "node-gpu-broken-2026-12-31.json").write_text('{"page_host": {}, "table": [')
    with pytest.raises(PluginError, match="node-gpu-broken-2026-12-31.json.*not valid JSON"):
        hook.render_nodegpu(results)
    (results / "node-gpu-broken-2026-12-31.json").write_text(
        json.dumps({"page_host": {}, "native_host": {}, "table": {"not": "a list"}}))
    with pytest.raises(PluginError, match="node-gpu-broken-2026-12-31.json.*table"):
        hook.render_nodegpu(results)


def test_the_playground_page_has_the_node_gpu_marker_under_its_heading():
    page = (REPO_ROOT / "site_src" / "playground.md").read_text(encoding="utf-8")
    heading = page.index("### The page's Python on a real GPU, without a browser")
    assert heading < page.index("<!-- measured:nodegpu -->")


def test_paired_federated_runs_are_rows_of_their_own(hook, tmp_path):
    run = {"date": "2026-12-07", "model": "tiny", "aggregator": "diloco", "outer_lr": 0.7, "outer_momentum": 0.5,
           "rounds": 200, "local_steps": 10, "batch": 8, "alone_seed": 1, "command": "python3 x",
           "val_nats_per_byte": {"initial": 3.5, "federated_2_clients": 2.06, "alone_1_client": 2.01}}
    (tmp_path / "fvs-a-2026-12-07.json").write_text(json.dumps(run))
    (tmp_path / "fvs-b-2026-12-07.json").write_text(json.dumps({**run, "paired": True}))
    text = hook.render_federated(tmp_path)
    assert len(hook.newest_federated(hook.load_results(tmp_path))) == 2
    assert text.count("| 1 (same batches) |") == 1 and text.count("| 1 |") == 1
