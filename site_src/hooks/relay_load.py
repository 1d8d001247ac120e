"""mkdocs hook: the relay's measured load, rendered at build time from benchmarks/results/*.json.

A page marks where the tables go with `<!-- relay:load -->` on a line of its own. The files are
those `python -m server.bench --json` writes (a `model`, a `machine`, an `aggregation` and a
`loopback` object), recognised by their contents, never their names. Files that lack the
machine's CPU per round (`loopback.machine_cpu_s_per_round`) are not rendered: the tables need it.

Rendered, per machine (the file's `machine` text): one row per model, client count and relay
(one process, or N processes on Redis) from the NEWEST file of that kind (by its recorded date or
date-time, ties broken by name), so the page cannot drift from the data; then that machine's
in-process aggregation figures from the newest file of each model. A figure a file lacks renders
as "—"; a file that is not valid JSON, or whose `loopback` or `aggregation` is not an object,
fails the build with a PluginError naming it.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

from mkdocs.exceptions import PluginError

RESULTS_DIR = "benchmarks/results"
MARKER = re.compile(r"^[ \t]*<!--\s*relay:load\s*-->[ \t]*$", re.MULTILINE)
DASH = "—"
MODELS = ["nano", "tiny", "small", "medium", "large"]


def _when(d: dict) -> datetime:
    value = d.get("date")
    if isinstance(value, str) and re.match(r"\d{4}-\d{2}-\d{2}", value):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            when = datetime.fromisoformat(value[:10])
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return datetime(1970, 1, 1, tzinfo=timezone.utc)


def load_runs(results_dir: Path) -> list[tuple[Path, dict]]:
    """(path, data) of every server.bench result in results_dir, by name."""
    out = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise PluginError(f"relay hook: {path} is not valid JSON: {e}") from e
        if not (isinstance(d, dict) and "loopback" in d and "aggregation" in d and "model" in d):
            continue
        if not isinstance(d["loopback"], dict) or not isinstance(d["aggregation"], dict):
            raise PluginError(f"relay hook: {path}: `loopback` and `aggregation` must be objects")
        if "machine_cpu_s_per_round" in d["loopback"]:
            out.append((path, d))
    return out


def run_kind(d: dict) -> tuple[str, str, int, int, bool]:
    """(machine, model, clients, processes, on Redis)."""
    w = d["loopback"]
    return (str(d.get("machine") or DASH), str(d["model"]), int(w.get("clients") or 0), int(w.get("processes") or 1),
            "--redis" in str(d.get("command", "")))


def newest_runs(runs: list[tuple[Path, dict]]) -> dict[tuple, tuple[Path, dict]]:
    groups: dict[tuple, list[tuple[Path, dict]]] = {}
    for path, d in runs:
        groups.setdefault(run_kind(d), []).append((path, d))
    return {k: max(v, key=lambda r: (_when(r[1]), r[0].name)) for k, v in groups.items()}


def _num(value: object, fmt: str, unit: str = "") -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, fmt) + unit
    return DASH


def _rate(value: object) -> str:
    """Deltas (or updates) per second: three significant figures, whole numbers from 100 up."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 100:
        return f"{value:.0f}"
    return _num(value, ".3g")


def _order(kind: tuple) -> tuple:
    machine, model, clients, processes, redis = kind
    return (machine, MODELS.index(model) if model in MODELS else len(MODELS), model, clients, redis, processes)


def render(results_dir: Path) -> str:
    newest = newest_runs(load_runs(results_dir))
    if not newest:
        return "_No relay measurement is committed yet (`python -m server.bench --json FILE`)._\n"
    out = []
    for machine in sorted({k[0] for k in newest}):
        kinds = sorted((k for k in newest if k[0] == machine), key=_order)
        out += [f"**{machine}**", "",
                "| model, clients | relay | close a round on loopback | ingest | deltas / s | machine CPU per round "
                "| deltas / s with every core busy | rounds | measured | file |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for kind in kinds:
            path, d = newest[kind]
            w = d["loopback"]
            relay = (f"{kind[3]} process{'es' if kind[3] > 1 else ''} on Redis" if kind[4] else "one process")
            done = f"{w.get('rounds_completed', DASH)}/{w.get('rounds', DASH)}"
            out.append(f"| `{kind[1]}`, {kind[2]} | {relay} | {_num(w.get('round_close_s'), '.2f', ' s')} "
                       f"| {_num(w.get('ingest_mb_per_s'), '.0f', ' MB/s')} "
                       f"| {_rate(w.get('aggregation_updates_per_s'))} "
                       f"| {_num(w.get('machine_cpu_s_per_round'), '.2f', ' CPU-s')} "
                       f"| {_rate(w.get('cpu_bound_updates_per_s'))} | {done} "
                       f"| {_when(d).strftime('%Y-%m-%d %H:%M UTC') if 'T' in str(d.get('date')) else d.get('date', DASH)} "
                       f"| `{path.name}` |")
        out += ["", "In process on the same machine (newest file of each model): validate one f16 delta and add it "
                    "to the float64 sum; close a round (outer step, f16 encoding, `W_{r+1}`, sha256); bytes per "
                    "parameter per round on the wire, one client, each way.", "",
                "| model | validate | add | updates / s | close a round | bytes / parameter up / down |",
                "|---|---|---|---|---|---|"]
        for model in sorted({k[1] for k in kinds}, key=lambda m: _order((machine, m, 0, 0, False))):
            path, d = max((newest[k] for k in kinds if k[1] == model), key=lambda r: (_when(r[1]), r[0].name))
            a, w = d["aggregation"], d["loopback"]
            out.append(f"| `{model}` | {_num(a.get('validate_ms'), '.1f', ' ms')} | {_num(a.get('add_ms'), '.1f', ' ms')} "
                       f"| {_rate(a.get('updates_per_s'))} | {_num(a.get('close_round_ms'), '.0f', ' ms')} "
                       f"| {_num(w.get('bytes_per_param_up'), '.3f')} / {_num(w.get('bytes_per_param_down'), '.3f')} |")
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if not MARKER.search(markdown):
        return markdown
    root = Path(config.config_file_path).resolve().parent
    table = render(root / RESULTS_DIR)
    return MARKER.sub(lambda m: table, markdown)
