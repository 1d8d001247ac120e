"""mkdocs hook: the bench page's quality table, rendered at build time from benchmarks/results/quality/.

A page marks where it goes with `<!-- quality:runs -->` on a line of its own. Each
`NAME.metrics.jsonl` there is the metrics.jsonl of a `tabgpt train` run (one JSON line per
evaluation); a sibling `NAME.config.json` (that run's config.json) gives its command and, when the
run recorded it (`trained_on`), the GPU and driver. Without one, the device, engine and date come
from the file name (its `-h100-dawn-2026-12-07` part).

Rendered: for each data set with a goal, the run with the lowest validation loss (nats per byte)
against the goal; then every run, best first. A line that is not JSON fails the build with the
file's name; a file without evaluations is listed with dashes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mkdocs.exceptions import PluginError

QUALITY_DIR = "benchmarks/results/quality"
MARKER = re.compile(r"^[ \t]*<!--\s*quality:runs\s*-->[ \t]*$", re.MULTILINE)
# nats per byte to reach within 5 minutes of training on one GPU (issue targets: nanoGPT's
# char-level shakespeare, makemore's transformer on names)
GOALS = {"shakespeare": 1.47, "names": 1.92}
DASH = "—"
# `tabgpt train` flags whose defaults a command leaves out: config field -> (flag, default)
_FLAGS = [("steps", "--steps", 1000), ("batch", "--batch", 8), ("lr", "--lr", 3e-3), ("dropout", "--dropout", 0.0),
          ("weight_decay", "--weight-decay", 0.1), ("beta2", "--beta2", 0.95),
          ("decay_start_frac", "--decay-start", 0.8), ("seed", "--seed", 1337), ("eval_every", "--eval-every", 100)]
_SHAPE = [("n_layer", "--layers"), ("n_embd", "--width"), ("n_head", "--heads"), ("block_size", "--context")]
_NAME = re.compile(r"-(h100|h200|[a-z0-9]+)-(dawn|wgpu-native)-(\d{4}-\d{2}-\d{2})")


def _evals(path: Path) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise PluginError(f"quality hook: {path}:{number} is not JSON: {e}") from e
        if isinstance(row, dict) and row.get("type") == "eval" and isinstance(row.get("val_nats_per_byte"), (int, float)):
            rows.append(row)
    return rows


def command(config: dict) -> str:
    """The `tabgpt train` command that reproduces a run's config.json."""
    parts = ["tabgpt train", f"--dataset {config.get('dataset')}", f"--model {config.get('model')}"]
    shape = config.get("model_config") or {}  # {} = the preset's own shape
    parts += [f"{flag} {shape[key]}" for key, flag in _SHAPE if key in shape]
    for key, flag, default in _FLAGS:
        value = config.get(key)
        if value is not None and value != default:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    if config.get("backend") == "gpu":
        parts += ["--backend gpu", f"--gpu {config.get('gpu', 'auto')}"]
    if config.get("precision", "fp32") != "fp32":
        parts.append(f"--precision {config['precision']}")
    return " ".join(parts)


def run_rows(quality_dir: Path) -> list[dict]:
    """One dict per metrics file: its best evaluation and where it ran."""
    runs = []
    for path in sorted(Path(quality_dir).glob("*.metrics.jsonl")):
        stem = path.name[: -len(".metrics.jsonl")]
        evals = _evals(path)
        best = min(evals, key=lambda r: r["val_nats_per_byte"]) if evals else {}
        config_path = path.with_name(stem + ".config.json")
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.exists() else {}
        m = _NAME.search(stem)
        trained_on = config.get("trained_on") if isinstance(config.get("trained_on"), dict) else {}
        runs.append({
            "file": path.name, "dataset": config.get("dataset") or stem.split("-")[0],
            "model": config.get("model") or (stem.split("-")[1] if "-" in stem else None),
            "best": best.get("val_nats_per_byte"), "step": best.get("step"), "elapsed_s": best.get("elapsed_s"),
            "device": trained_on.get("device") or (f"{m.group(1).upper()} ({m.group(2)})" if m else None),
            "driver": trained_on.get("driver"), "date": m.group(3) if m else None,
            "command": command(config) if config else None})
    return runs


def _cell(value: object, fmt: str = "") -> str:
    if value is None or value == "":
        return DASH
    text = format(value, fmt) if fmt and isinstance(value, (int, float)) else str(value)
    return text.replace("|", "\\|")


def _seconds(value: object) -> str:
    return f"{value:.1f} s" if isinstance(value, (int, float)) else DASH


def render(quality_dir: Path) -> str:
    runs = run_rows(quality_dir)
    if not runs:
        return "No quality runs in `benchmarks/results/quality/` yet."
    lines = ["| data set | goal (nats/byte) | best run | met | model | at step | after | device | driver | date | command |",
             "|" + "---|" * 11]
    for dataset, goal in GOALS.items():
        mine = [r for r in runs if r["dataset"] == dataset and r["best"] is not None]
        if not mine:
            lines.append(f"| {dataset} | {goal} | {DASH} | no run | | | | | | | |")
            continue
        r = min(mine, key=lambda r: r["best"])
        lines.append(f"| {dataset} | {goal} | **{r['best']:.4f}** | {'yes' if r['best'] <= goal else 'no'} | "
                     f"{_cell(r['model'])} | {_cell(r['step'])} | {_seconds(r['elapsed_s'])} | "
                     f"{_cell(r['device'])} | {_cell(r['driver'])} | {_cell(r['date'])} | "
                     f"{'`' + r['command'] + '`' if r['command'] else DASH} |")
    lines += ["", "\"After\" is the wall clock from the run's start to that evaluation, evaluations included; "
              "runs that shared the GPU with others took longer than alone (`benchmarks/results/quality/README.md` "
              "says which, and gives every command).", "", "Every run, best first:", "",
              "| file | best val | at step | after |", "|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r["dataset"], r["best"] if r["best"] is not None else float("inf"))):
        lines.append(f"| `{r['file']}` | {_cell(r['best'], '.4f')} | {_cell(r['step'])} | "
                     f"{_seconds(r['elapsed_s'])} |")
    return "\n".join(lines)


def replace_marker(markdown: str, quality_dir: Path) -> str:
    return MARKER.sub(lambda m: render(quality_dir), markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:
    root = Path(config.config_file_path).resolve().parent
    return replace_marker(markdown, root / QUALITY_DIR)
