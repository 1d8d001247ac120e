"""site_src/hooks/quality_runs.py: the bench page's quality table, from benchmarks/results/quality/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from _hooks import load_hook
from _require import REPO_ROOT

QUALITY = REPO_ROOT / "benchmarks" / "results" / "quality"


@pytest.fixture(scope="module")
def hook() -> ModuleType:
    return load_hook("quality_runs.py")


def _metrics(path: Path, vals: list[float], every: int = 250) -> None:
    rows = [{"type": "eval", "step": every * (i + 1), "val_nats_per_byte": v, "elapsed_s": 3.0 * (i + 1)}
            for i, v in enumerate(vals)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _section(hook, folder: Path) -> str:
    return hook.replace_marker("before\n<!-- quality:runs -->\nafter\n", folder)


def test_the_best_run_of_each_data_set_is_judged_against_its_goal(hook, tmp_path):
    _metrics(tmp_path / "shakespeare-medium-a-h100-dawn-2026-12-07.metrics.jsonl", [1.60, 1.4812, 1.49])
    _metrics(tmp_path / "shakespeare-medium-b-h200-dawn-2026-12-03.metrics.jsonl", [1.55, 1.5001])
    _metrics(tmp_path / "names-small-c-h100-dawn-2026-12-07.metrics.jsonl", [1.95, 1.9133])
    out = _section(hook, tmp_path)
    assert out.startswith("before\n") and out.endswith("\nafter\n")
    assert "| shakespeare | 1.47 | **1.4812** | no | medium | 500 | 6.0 s | H100 (dawn) | — | 2026-12-07 |" in out
    assert "| names | 1.92 | **1.9133** | yes | small | 500 |" in out
    # every run is listed, best first within its data set
    assert out.index("shakespeare-medium-a-") < out.index("shakespeare-medium-b-")
    # a better figure in a file changes the table
    _metrics(tmp_path / "shakespeare-medium-b-h200-dawn-2026-12-03.metrics.jsonl", [1.55, 1.4655])
    assert "| shakespeare | 1.47 | **1.4655** | yes | medium | 500 | 6.0 s | H200 (dawn) | — | 2026-12-03 |" in \
        _section(hook, tmp_path)


def test_a_sibling_config_gives_the_command_device_and_driver(hook, tmp_path):
    _metrics(tmp_path / "shakespeare-medium-x-h100-dawn-2026-12-07.metrics.jsonl", [1.4561])
    config = {"dataset": "shakespeare", "model": "medium", "steps": 3500, "batch": 32, "lr": 0.002, "dropout": 0.3,
              "weight_decay": 1.0, "beta2": 0.95, "decay_start_frac": 0.8, "seed": 1337, "eval_every": 250,
              "backend": "gpu", "gpu": "dawn", "model_config": {},
              "trained_on": {"device": "NVIDIA H100 80GB HBM3", "driver": "580.159.04"}}
    (tmp_path / "shakespeare-medium-x-h100-dawn-2026-12-07.config.json").write_text(json.dumps(config))
    out = _section(hook, tmp_path)
    assert ("| NVIDIA H100 80GB HBM3 | 580.159.04 | 2026-12-07 | `tabgpt train --dataset shakespeare --model medium "
            "--steps 3500 --batch 32 --lr 0.002 --dropout 0.3 --weight-decay 1 --eval-every 250 --backend gpu "
            "--gpu dawn` |") in out
    assert hook.command({**config, "model_config": {"n_layer": 8, "n_embd": 256}, "seed": 1}) == (
        "tabgpt train --dataset shakespeare --model medium --layers 8 --width 256 --steps 3500 --batch 32 "
        "--lr 0.002 --dropout 0.3 --weight-decay 1 --seed 1 --eval-every 250 --backend gpu --gpu dawn")
    assert hook.command({**config, "precision": "mixed"}).endswith("--backend gpu --gpu dawn --precision mixed")
    assert hook.command({**config, "precision": "fp32"}).endswith("--backend gpu --gpu dawn")


def test_a_data_set_without_runs_says_so_and_a_broken_line_names_its_file(hook, tmp_path):
    _metrics(tmp_path / "names-small-c-h100-dawn-2026-12-07.metrics.jsonl", [1.9])
    assert "| shakespeare | 1.47 | — | no run |" in _section(hook, tmp_path)
    bad = tmp_path / "names-small-d-h100-dawn-2026-12-07.metrics.jsonl"
    bad.write_text('{"type": "eval", "step": 1, "val_nats_per_byte": 2.0}\nnot json\n')
    from mkdocs.exceptions import PluginError
    with pytest.raises(PluginError, match="names-small-d-h100-dawn-2026-12-07.metrics.jsonl:2"):
        _section(hook, tmp_path)


def test_the_committed_runs_render_and_the_bench_page_has_the_marker(hook, tmp_path):
    folder = tmp_path / "quality"
    shutil.copytree(QUALITY, folder)
    out = _section(hook, folder)
    assert "| shakespeare | 1.47 | **" in out and "| names | 1.92 | **" in out
    assert len([p for p in folder.glob("*.metrics.jsonl")]) == out.count(".metrics.jsonl` |")
    assert "<!-- quality:runs -->" in (REPO_ROOT / "site_src/bench.md").read_text(encoding="utf-8")
