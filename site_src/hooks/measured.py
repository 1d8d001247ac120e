"""mkdocs hook: the pages' "Measured" sections, rendered at build time from benchmarks/results/*.json.

A page marks where a section goes with an HTML comment on a line of its own:

    <!-- measured:bench -->        files written by `tabgpt bench --json`: one block per device and engine
    <!-- measured:federated -->    files written by benchmarks/federated_vs_single.py --json
    <!-- measured:playground -->   files written by benchmarks/browser_playground.py --json
    <!-- measured:nodegpu -->      files written by benchmarks/node_gpu_playground.py --json: one block per
                                   device and engine pair

Each file's kind is read from its contents, never its name:
  - bench: backend + device + engine (`adapter.device` and `engine`; numpy: the CPU);
  - federated: model, aggregator, outer lr and momentum, rounds, local steps, batch, seed and device;
  - playground: browser adapter, Chromium settings (the tests' flags or a user's defaults) and the form;
  - nodegpu: device (the native host's adapter), the page's engine and the native engine.
Only the NEWEST file of each kind is rendered, so a page cannot drift from the data: newest by the
date recorded in the file (an ISO date or date-time), else the YYYY-MM-DD in its name, ties broken
by name. A field a file lacks renders as "—"; a file that is not valid JSON, or whose recognised
parts have the wrong shape, fails the build with a PluginError naming it. Files of other kinds
(probe results) are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from mkdocs.exceptions import PluginError

RESULTS_DIR = "benchmarks/results"
MARKER = re.compile(r"^[ \t]*<!--\s*measured:([a-z]+)\s*-->[ \t]*$", re.MULTILINE)
DASH = "—"
TESTS_FLAG = "--enable-dawn-features=disable_workgroup_init"  # tests/_browser.py CHROMIUM_ARGS adds it
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class Result(NamedTuple):
    path: Path
    data: object
    when: datetime  # the recorded date, else the file name's, else the epoch
    has_time: bool  # whether `when` came with a time of day


# ---------------------------------------------------------------------------------------------- files

def _parse_when(value: object) -> tuple[datetime, bool] | None:
    if not isinstance(value, str) or not re.match(r"\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        when = datetime.fromisoformat(value[:10])
    has_time = len(value.strip()) > 10
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)), has_time


def _when(path: Path, recorded: object) -> tuple[datetime, bool]:
    parsed = _parse_when(recorded)
    if parsed:
        return parsed
    m = re.search(r"\d{4}-\d{2}-\d{2}", path.name)
    return (datetime.fromisoformat(m.group(0)).replace(tzinfo=timezone.utc), False) if m else (_EPOCH, False)


def load_results(results_dir: Path) -> list[tuple[Path, object]]:
    """(path, parsed JSON) of every results_dir/*.json, by name; invalid JSON is a PluginError."""
    out = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            out.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except (ValueError, UnicodeDecodeError) as e:
            raise PluginError(f"measured hook: {path} is not valid JSON: {e}") from e
    return out


def _newest(items: dict[tuple, list[Result]]) -> dict[tuple, Result]:
    return {k: max(v, key=lambda r: (r.when, r.path.name)) for k, v in items.items()}


def _shape_error(path: Path, what: str) -> PluginError:
    return PluginError(f"measured hook: {path}: {what}")


def _dicts(path: Path, value: object, field: str) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise _shape_error(path, f"`{field}` must be a list of objects")
    return value


# ---------------------------------------------------------------------------------------------- bench

def _is_bench(d: object) -> bool:  # mixed-precision files: mixed_bench.py's
    return isinstance(d, dict) and d.get("backend") in ("gpu", "numpy") and "steps" in d and d.get("precision") != "mixed"


def bench_kind(d: dict) -> tuple[str, str, str]:
    adapter = d.get("adapter") if isinstance(d.get("adapter"), dict) else {}
    if d["backend"] == "numpy":
        v = d.get("versions") if isinstance(d.get("versions"), dict) else {}
        return "numpy", f"CPU ({v.get('processor') or v.get('machine') or DASH})", "numpy"
    return "gpu", str(adapter.get("device") or d.get("torch_device_name") or DASH), \
        str(d.get("engine") or adapter.get("engine") or DASH)


def newest_bench(results: list[tuple[Path, object]]) -> list[Result]:
    groups: dict[tuple, list[Result]] = {}
    for path, d in results:
        if _is_bench(d):
            groups.setdefault(bench_kind(d), []).append(Result(path, d, *_when(path, d.get("date"))))
    newest = _newest(groups)
    return [newest[k] for k in sorted(newest, key=lambda k: (k[0] != "gpu", k[1], k[2]))]


# ------------------------------------------------------------------------------------------ formatting

def _cell(value: object) -> str:
    text = DASH if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _num(value: object, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else DASH


def _ms(value: object) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return DASH
    return f"{value:.3f}" if value < 1 else f"{value:.2f}"


def _code(value: object) -> str:
    return f"`{value}`" if value else DASH


def _date(r: Result) -> str:
    if r.when == _EPOCH:
        return DASH
    return r.when.strftime("%Y-%m-%d %H:%M UTC") if r.has_time else r.when.strftime("%Y-%m-%d")


def _rel(path: Path, root: Path | None) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix() if root else path.name
    except ValueError:
        return path.as_posix()


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(_cell(c) if c != "" else DASH for c in row) + " |" for row in rows]


def _bullets(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"- **{k}:** {v}" for k, v in pairs]


# ------------------------------------------------------------------------------------------- render

def _gpu_texts(device: str, engine: str, adapter: dict) -> tuple[str, str, str]:
    """(device with its adapter and backend type, driver, engine with its version) of a GPU result."""
    driver = str(adapter.get("description") or "")
    vendor = str(adapter.get("vendor") or "")
    if vendor and driver.startswith(vendor + ":"):
        driver = driver[len(vendor) + 1:].strip()
    kind = ", ".join(str(x) for x in (adapter.get("adapter_type"), adapter.get("backend_type")) if x)
    engine_text = " ".join(str(x) for x in (engine, adapter.get("version")) if x and x != DASH) or DASH
    return (f"{device} ({kind})" if kind else device), driver, engine_text



def render_bench(results_dir: Path, root: Path | None = None) -> str:
    """Markdown: for the newest `tabgpt bench --json` file of each device and engine, what ran where and
    when, the training steps beside PyTorch and the GEMM rows."""
    blocks = []
    for r in newest_bench(load_results(results_dir)):
        d = r.data
        backend, device, engine = bench_kind(d)
        adapter = d.get("adapter") if isinstance(d.get("adapter"), dict) else {}
        versions = d.get("versions") if isinstance(d.get("versions"), dict) else {}
        gate = _dicts(r.path, d.get("gate"), "gate")
        steps = _dicts(r.path, d.get("steps"), "steps")
        gemm = _dicts(r.path, d.get("gemm"), "gemm")
        if backend == "gpu":
            device_text, driver, engine_text = _gpu_texts(device, engine, adapter)
        else:
            driver, engine_text = "", f"numpy {versions.get('numpy') or ''}".strip()
            device_text = device
        torch = versions.get("torch")
        torch_on = d.get("torch_device_name") or d.get("torch_device")
        torch_text = f"PyTorch {torch} on {torch_on}, fp32, TF32 off, same process" if torch and backend == "gpu" \
            else (f"PyTorch {torch} ({torch_on or 'CPU'}), fp32, same process" if torch else DASH)
        passed = sum(1 for g in gate if g.get("passed") is True)
        lines = [f"### {device} · {engine}", ""]
        lines += _bullets([("device", _cell(device_text)), ("driver", _cell(driver or None)),
                           ("engine", _cell(engine_text)), ("beside", _cell(torch_text)),
                           ("date", _date(r)), ("command", _code(d.get("command"))),
                           ("file", f"`{_rel(r.path, root)}`"),
                           ("correctness gate", f"{passed} of {len(gate)} cases passed" if gate else DASH)])
        lines.append("")
        if backend == "gpu":
            lines.append("Training step (forward + backward + clip + AdamW, full context), ms per step:")
            lines.append("")
            lines += _table(["model", "batch", "dispatches", "ours ms", "PyTorch ms", "ours ÷ PyTorch"],
                            [[_cell(s.get("model")), _num(s.get("batch"), "d"), _num(s.get("dispatches_per_step"), "d"),
                              _ms(s.get("ours_ms")), _ms(s.get("torch_ms")),
                              _num(s.get("ratio_ours_over_torch"), ".2f")] for s in steps])
        else:
            lines.append("Training step (forward + backward + clip + AdamW, full context), ms per step:")
            lines.append("")
            lines += _table(["model", "batch", "numpy ms", "PyTorch ms", "numpy ÷ PyTorch"],
                            [[_cell(s.get("model")), _num(s.get("batch"), "d"), _ms(s.get("numpy_ms")),
                              _ms(s.get("torch_ms")), _num(s.get("ratio_numpy_over_torch"), ".2f")] for s in steps])
        if gemm:
            lines += ["", "GEMM y = x @ w (the models' own products at batch 8, full context; N³ when asked); "
                      "the last column is our rate over PyTorch's (above 1: faster):", ""]
            lines += _table(["product", "N × K × M", "ours ms", "ours GFLOP/s", "PyTorch ms", "PyTorch GFLOP/s",
                             "ours ÷ PyTorch (rate)"],
                            [[_cell(g.get("shape")),
                              " × ".join(_num(g.get(k), "d") for k in ("N", "K", "M")),
                              _ms(g.get("ours_ms")), _num(g.get("ours_gflops"), ",.0f"), _ms(g.get("torch_ms")),
                              _num(g.get("torch_gflops"), ",.0f"), _num(g.get("rate_ratio_ours_over_torch"), ".2f")]
                             for g in gemm])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "No `tabgpt bench` result files yet."


# --------------------------------------------------------------------------------------------- inference

def _is_inference(d: object) -> bool:
    return isinstance(d, dict) and isinstance(d.get("inference"), dict)


def render_inference(results_dir: Path, root: Path | None = None) -> str:
    """Markdown: for the newest `tabgpt bench --inference` file of each device, engine, model and dtype,
    GPT-2 decoding beside transformers' generate and the memory-bandwidth floor."""
    groups: dict[tuple, list[Result]] = {}
    for path, d in load_results(results_dir):
        if _is_inference(d):
            inf = d["inference"]
            adapter = d.get("adapter") if isinstance(d.get("adapter"), dict) else {}
            key = (str(adapter.get("device") or DASH), str(d.get("engine") or DASH), str(inf.get("model")),
                   str(inf.get("dtype")))
            groups.setdefault(key, []).append(Result(path, d, *_when(path, d.get("date"))))
    newest = _newest(groups)
    blocks = []
    for key in sorted(newest):
        r = newest[key]
        d, inf = r.data, r.data["inference"]
        device, engine, model, dtype = key
        adapter = d.get("adapter") if isinstance(d.get("adapter"), dict) else {}
        device_text, driver, engine_text = _gpu_texts(device, engine, adapter)
        ours = inf.get("ours") if isinstance(inf.get("ours"), dict) else {}
        peer = inf.get("transformers") if isinstance(inf.get("transformers"), dict) else {}
        versions = d.get("versions") if isinstance(d.get("versions"), dict) else {}
        gate = _dicts(r.path, d.get("gate"), "gate")
        passed = sum(1 for g in gate if g.get("passed") is True)
        lines = [f"### GPT-2 `{model}` ({dtype}) · {device} · {engine}", ""]
        lines += _bullets([("device", _cell(device_text)), ("driver", _cell(driver or None)),
                           ("engine", _cell(engine_text)),
                           ("beside", _cell(f"transformers {peer.get('transformers')} (PyTorch {versions.get('torch')}) "
                                            f"on {peer.get('device')}, eager fp32, TF32 off" if peer else None)),
                           ("date", _date(r)), ("command", _code(d.get("command"))),
                           ("file", f"`{_rel(r.path, root)}`"),
                           ("correctness gate", f"{passed} of {len(gate)} cases passed" if gate else DASH)])
        lines += ["", f"Batch 1, a {_num(inf.get('prompt_tokens'), 'd')}-token prompt, "
                  f"{_num(inf.get('new_tokens'), 'd')} greedy tokens; the floor is the weights one step reads "
                  f"({_num((inf.get('step_weight_bytes') or 0) / 1e6, ',.0f')} MB) over the memory bandwidth "
                  f"measured in the same run ({_num(inf.get('memory_gb_s'), ',.0f')} GB/s):", ""]
        lines += _table(["", "first token ms", "ms / token", "÷ transformers", "÷ floor", "greedy ids agree"],
                        [["ours", _ms(ours.get("first_token_ms")), _ms(ours.get("ms_per_token")),
                          _num(inf.get("ratio_ms_per_token"), ".2f"), _num(inf.get("over_floor"), ".1f"),
                          f"{_num(inf.get('ids_agree'), 'd')} of {_num(inf.get('new_tokens'), 'd')}"],
                         ["transformers", _ms(peer.get("first_token_ms")), _ms(peer.get("ms_per_token")), "", "", ""],
                         ["floor", "", _ms(inf.get("floor_ms_per_token")), "", "", ""]])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "No `tabgpt bench --inference` result files yet."


def render_inference_page(results_dir: Path, root: Path | None = None) -> str:
    """Markdown: the newest `benchmarks/browser_inference.py` file of each Chromium and model: the
    inference page's own load time, time to first token and ms/token."""
    groups: dict[tuple, list[Result]] = {}
    for path, d in load_results(results_dir):
        if isinstance(d, dict) and d.get("kind") == "browser-inference":
            key = (str(d.get("chromium") or DASH), str(d.get("model") or DASH), str(d.get("backend") or DASH))
            groups.setdefault(key, []).append(Result(path, d, *_when(path, d.get("date"))))
    newest = _newest(groups)
    rows = [[_cell(r.data.get("model")), _cell(r.data.get("backend")), _cell(r.data.get("chromium")),
             _num(r.data.get("load_s"), ".1f"), _ms(r.data.get("first_token_ms")), _ms(r.data.get("ms_per_token")),
             _num(r.data.get("new_tokens"), "d"), _date(r), _code(r.data.get("command")), f"`{_rel(r.path, root)}`"]
            for r in (newest[k] for k in sorted(newest))]
    if not rows:
        return "No `benchmarks/browser_inference.py` result files yet."
    return "\n".join(_table(["model", "adapter", "Chromium", "load s", "first token ms", "ms / token", "tokens",
                              "date", "command", "file"], rows))


# --------------------------------------------------------------------------------------------- federated

def _is_federated(d: object) -> bool:
    return isinstance(d, dict) and isinstance(d.get("val_nats_per_byte"), dict) and "aggregator" in d


def federated_kind(d: dict) -> tuple:
    return tuple(str(d.get(k)) for k in ("model", "aggregator", "outer_lr", "outer_momentum", "rounds",
                                          "local_steps", "batch", "alone_seed", "paired", "device"))


def newest_federated(results: list[tuple[Path, object]]) -> list[Result]:
    groups: dict[tuple, list[Result]] = {}
    for path, d in results:
        if _is_federated(d):
            groups.setdefault(federated_kind(d), []).append(Result(path, d, *_when(path, d.get("date"))))
    newest = _newest(groups).values()
    order = {"nano": 0, "tiny": 1, "small": 2, "medium": 3, "large": 4}
    return sorted(newest, key=lambda r: (order.get(r.data.get("model"), 9), str(r.data.get("model")),
                                         -(r.data.get("local_steps") or 0), str(r.data.get("alone_seed")), r.path.name))


def _diff(a: object, b: object) -> str:
    ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return f"{a - b:+.3f}" if ok else DASH


def render_federated(results_dir: Path, root: Path | None = None) -> str:
    """Markdown: the newest benchmarks/federated_vs_single.py file of each configuration and seed."""
    runs = newest_federated(load_results(results_dir))
    if not runs:
        return "No `federated_vs_single.py` result files yet."
    rows, commands, sizes = [], [], {}
    for r in runs:
        d = r.data
        v = d["val_nats_per_byte"]
        params = d.get("param_count")
        model = f"{d.get('model')} ({params:,})" if isinstance(params, int) else _cell(d.get("model"))
        outer = f"{d.get('aggregator')} {d.get('outer_lr')} / {d.get('outer_momentum')}" \
            if d.get("aggregator") == "diloco" else _cell(d.get("aggregator"))
        fed, alone, alone2 = v.get("federated_2_clients"), v.get("alone_1_client"), v.get("alone_1_client_batch_2B")
        wall = d.get("wall_s") if isinstance(d.get("wall_s"), dict) else {}
        rows.append([model, f"{_cell(d.get('rounds'))} × {_cell(d.get('local_steps'))}", outer,
                     _num(d.get("tokens_total"), ",d"),
                     _cell(d.get("alone_seed")) + (" (same batches)" if d.get("paired") else ""), _num(v.get("initial"), ".3f"),
                     _num(fed, ".3f"), _num(alone, ".3f"), f"**{_diff(fed, alone)}**", _num(alone2, ".3f"),
                     _diff(fed, alone2), f"{_num(wall.get('federated'), '.0f')} / {_num(wall.get('alone'), '.0f')}"])
        commands.append(f"- {_date(r)}, {_cell(d.get('device'))}: {_code(d.get('command'))} (`{_rel(r.path, root)}`)")
        b = d.get("bytes_per_round_per_client")
        if isinstance(b, dict) and d.get("model") not in sizes:
            sizes[d.get("model")] = (model, b, d.get("bytes_per_client_in_all"), d.get("rounds"))
    lines = _table(["model (parameters)", "rounds × H", "aggregator (outer lr / momentum)", "tokens in all", "seed",
                    "val at start", "2 clients", "1 client alone", "difference", "alone, batch 2B", "difference",
                    "wall s: 2 clients / alone"], rows)
    lines += ["", "Runs (date, machine, command, file):", ""] + commands
    if sizes:
        lines += ["", "Bytes per round and client (the protocol's frame sizes):", ""]
        lines += _table(["model", "DELTA sent (f16)", "UPDATE received (f16)", "WEIGHTS on joining (f32, once)",
                         "per client, whole run"],
                        [[m, _num(b.get("delta_sent"), ",d") + " B", _num(b.get("update_received"), ",d") + " B",
                          _num(b.get("weights_on_join"), ",d") + " B",
                          (f"{total / 1e6:.1f} MB ({rounds} rounds)" if isinstance(total, int) else DASH)]
                         for m, b, total, rounds in sizes.values()])
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- playground

def _playground_runs(d: object, label: str = "") -> list[tuple[str, dict]]:
    """(label, run) for every run object (one with `browser` and `native` objects) in a file, at any depth."""
    if isinstance(d, dict):
        if isinstance(d.get("browser"), dict) and isinstance(d.get("native"), dict):
            return [(label, d)]
        return [x for k, v in d.items() for x in _playground_runs(v, k if label in ("", "runs") else f"{label}-{k}")]
    if isinstance(d, list):
        return [x for i, v in enumerate(d) for x in _playground_runs(v, f"{label}-{i + 1}" if label else str(i + 1))]
    return []


def _chromium(run: dict) -> str:
    args = run["browser"].get("chromium_args")
    if not isinstance(args, list):
        return DASH
    return "tests' flags" if TESTS_FLAG in args else "Chromium defaults"


def playground_kind(run: dict) -> tuple:
    form = run.get("form") if isinstance(run.get("form"), dict) else {}
    return (str(run["browser"].get("adapter")), _chromium(run),
            tuple(str(form.get(k)) for k in ("model", "dataset", "batch", "steps")))


def newest_playground(results: list[tuple[Path, object]]) -> list[tuple[Result, list[tuple[str, dict]]]]:
    """(file, its runs of that kind) for the newest file of each kind."""
    groups: dict[tuple, list[Result]] = {}
    for path, d in results:
        by_kind: dict[tuple, list] = {}
        for label, run in _playground_runs(d):
            by_kind.setdefault(playground_kind(run), []).append((label or path.stem, run))
        for kind, runs in by_kind.items():
            dates = [_when(path, run.get("date")) for _, run in runs]
            groups.setdefault(kind, []).append(Result(path, runs, *max(dates)))
    newest = _newest(groups)
    return [(newest[k], newest[k].data) for k in sorted(newest, key=lambda k: (k[2], k[0], k[1]))]


def _command(run: dict) -> str:
    form = run.get("form") if isinstance(run.get("form"), dict) else {}
    parts = ["benchmarks/browser_playground.py"]
    for key, flag in (("model", "--model"), ("dataset", "--dataset"), ("steps", "--steps"), ("batch", "--batch")):
        if form.get(key) is not None:
            parts.append(f"{flag} {form[key]}")
    if _chromium(run) == "Chromium defaults":
        parts.append("--default-chromium")
    return " ".join(parts)


def render_playground(results_dir: Path, root: Path | None = None) -> str:
    """Markdown: every run in the newest benchmarks/browser_playground.py file of each setting."""
    picked = newest_playground(load_results(results_dir))
    if not picked:
        return "No `browser_playground.py` result files yet."
    rows, about = [], []
    for r, runs in picked:
        for label, run in runs:
            b, n = run["browser"], run["native"]
            reload = b.get("reload") if isinstance(b.get("reload"), dict) else {}
            load = run.get("load_average")
            longest = b.get("longest_task_ms")
            tasks = b.get("long_tasks_while_training")
            rows.append([_chromium(run), label, _num(load[0], ".1f") if isinstance(load, list) and load else DASH,
                         _num(b.get("python_ready_s"), ".1f") + " s", f"**{_num(b.get('first_step_s'), '.1f')} s**",
                         _num(reload.get("first_step_s"), ".1f") + " s",
                         f"{_cell(tasks)} ({_num(longest, '.0f')} ms)",
                         _num(b.get("tokens_per_s"), ",.0f"), _num(n.get("tokens_per_s"), ",.0f"),
                         f"**{_num(run.get('tokens_per_s_ratio'), '.2f')}**",
                         _num(run.get("worst_relative_loss_difference"), ".1e")])
        first = runs[0][1]
        ua = str(first["browser"].get("user_agent") or "")
        m = re.search(r"(HeadlessChrome|Chrome)/([\d.]+)", ua)
        about.append(f"- {_chromium(first)}: {_cell(m.group(0) if m else None)}, browser adapter "
                     f"{_cell(first['browser'].get('adapter'))}; native {_cell(first['native'].get('adapter'))}; "
                     f"{_cell(first.get('machine'))}; {_date(r)}; `{_command(first)}` (`{_rel(r.path, root)}`)")
    lines = _table(["Chromium", "run", "load average", "page load → Python running", "→ first step done",
                    "first step after a reload", "long tasks while training (longest)", "browser tokens/s",
                    "native tokens/s", "browser ÷ native", "worst loss difference"], rows)
    host = _host_table([(label, run) for _, runs in picked for label, run in runs])
    return "\n".join(lines + host + ["", "Where and how (browser, adapters, machine, date, command, file):", ""]
                     + about)


def _host_table(runs: list[tuple[str, dict]]) -> list[str]:
    """Host time per training step, for the runs that measured it (browser_playground.py's 4th figure)."""
    rows = []
    for label, run in runs:
        b, n = run["browser"], run["native"]
        if not isinstance(b.get("host_ms_per_step"), (int, float)):
            continue
        py = b.get("python_replay") if isinstance(b.get("python_replay"), dict) else {}
        reload = b.get("reload") if isinstance(b.get("reload"), dict) else {}
        share = b.get("host_share")
        rows.append([_chromium(run), label, _cell(b.get("dispatches_per_step")),
                     f"**{_num(b.get('host_ms_per_step'), '.2f')}**", _num(reload.get("host_ms_per_step"), ".2f"),
                     _num(py.get("host_ms_per_step"), ".2f"),
                     f"{_num(n.get('host_ms_per_step'), '.2f')} ({_num(n.get('encode_ms_per_step'), '.2f')})",
                     _num(run.get("host_goal_ms"), ".3f"), _num(run.get("host_ratio_to_native"), ".2f"),
                     _num(b.get("ms_per_step"), ".1f"),
                     _num(share * 100, ".0f") + " %" if isinstance(share, (int, float)) else DASH,
                     {True: "yes", False: "**no**"}.get(py.get("losses_equal"), DASH)])
    if not rows:
        return []
    return ["", "Host time per training step (ms on the page's clock, the median over the steps after the first; "
            "SwiftShader computes earlier steps on the same cores meanwhile; native: the same plan replayed by "
            "Python over wgpu-py on an idle GPU, whole step (without its submit)):", ""] + _table(
        ["Chromium", "run", "dispatches", "browser, JavaScript replay", "after a reload",
         "browser, Python replay", "native", "goal 0.3 + 0.002 × dispatches", "browser ÷ native",
         "ms/step", "host share", "same losses as the Python replay"], rows)


# ---------------------------------------------------------------------------------------------- nodegpu

def _is_nodegpu(d: object) -> bool:
    return isinstance(d, dict) and isinstance(d.get("page_host"), dict) and isinstance(d.get("native_host"), dict) \
        and "table" in d


def _adapter_of(host: object) -> dict:
    info = host.get("adapter_info") if isinstance(host, dict) else None
    return info if isinstance(info, dict) else {}


def nodegpu_kind(d: dict) -> tuple[str, str, str]:
    device = _adapter_of(d["native_host"]).get("device") or _adapter_of(d["page_host"]).get("device")
    return str(device or DASH), str(d.get("engine") or DASH), str(d.get("native_engine") or DASH)


def _losses_equal(row: dict) -> str:
    parts = [row.get(k) for k in ("losses_warmup", "losses_timed")]
    parts = [p for p in parts if isinstance(p, dict)]
    if not parts:
        return DASH
    steps = sum(p.get("steps_compared") or 0 for p in parts)
    if all(p.get("equal") is True for p in parts):
        return f"yes ({steps} steps)"
    worst = max((p.get("max_rel_diff") for p in parts if isinstance(p.get("max_rel_diff"), (int, float))),
                default=None)
    return f"**no** (worst relative {_num(worst, '.1e')})"


def render_nodegpu(results_dir: Path, root: Path | None = None) -> str:
    """Markdown: for the newest benchmarks/node_gpu_playground.py file of each device and engine pair,
    the playground's own path (Pyodide, BrowserExecutor, step_replay.js) without a browser against the
    same training natively, per preset."""
    groups: dict[tuple, list[Result]] = {}
    for path, d in load_results(results_dir):
        if _is_nodegpu(d):
            groups.setdefault(nodegpu_kind(d), []).append(Result(path, d, *_when(path, d.get("date"))))
    newest = _newest(groups)
    blocks = []
    for key in sorted(newest):
        r = newest[key]
        d = r.data
        device, engine, native_engine = key
        rows = _dicts(r.path, d.get("table"), "table")
        native = _adapter_of(d["native_host"])
        device_text, driver, native_text = _gpu_texts(device, native_engine, native)
        page = _adapter_of(d["page_host"])
        bundle = d.get("bundle") if isinstance(d.get("bundle"), dict) else {}
        page_text = ", ".join(x for x in (
            engine, f"npm webgpu {bundle['webgpu']}" if bundle.get("webgpu") else "",
            f"Pyodide {bundle['pyodide']}" if bundle.get("pyodide") else "",
            f"Node.js {bundle['node']}" if bundle.get("node") else "") if x) or page.get("user_agent")
        settings = d.get("settings") if isinstance(d.get("settings"), dict) else {}
        lines = [f"### {device} · {engine} beside {native_engine}", ""]
        lines += _bullets([("device", _cell(device_text)), ("driver", _cell(driver or None)),
                           ("page's path", _cell(page_text)), ("native", _cell(f"{native_text} (wgpu-py)")),
                           ("training", _cell(f"{settings.get('dataset')}, batch {settings.get('batch')}, "
                                              f"{settings.get('steps')} steps timed after {settings.get('warmup')}"
                                              if settings else None)),
                           ("date", _date(r)), ("command", _code(d.get("command"))),
                           ("file", f"`{_rel(r.path, root)}`")])
        lines += ["", "Training throughput (the Trainer's tokens/s), the page's path against the faster "
                  "native run, and every step's loss compared:", ""]
        lines += _table(["model", "page tokens/s", "native tokens/s", "page ÷ native", "goal", "same losses",
                         "native runs agree"],
                        [[_cell(t.get("model")), _num(t.get("page_tokens_per_s"), ",.0f"),
                          _num(t.get("native_tokens_per_s"), ",.0f"), f"**{_num(t.get('ratio'), '.2f')}**",
                          f"≥ {_num(t.get('goal'), '.2f')}" + {True: "", False: " (**missed**)"}.get(
                              t.get("meets_goal"), ""),
                          _losses_equal(t), {True: "yes", False: "**no**"}.get(t.get("native_runs_equal"), DASH)]
                         for t in rows])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "No `benchmarks/node_gpu_playground.py` result files yet."


# ------------------------------------------------------------------------------------------------ hook

RENDERERS: dict[str, Callable[[Path, Path | None], str]] = {
    "bench": render_bench, "inference": render_inference, "inferencepage": render_inference_page,
    "federated": render_federated,
    "playground": render_playground, "nodegpu": render_nodegpu}


def replace_markers(markdown: str, results_dir: Path, root: Path | None = None, where: str = "") -> str:
    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name not in RENDERERS:
            raise PluginError(f"measured hook: {where}: unknown marker <!-- measured:{name} --> "
                              f"(known: {', '.join(RENDERERS)})")
        return RENDERERS[name](results_dir, root)

    return MARKER.sub(sub, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:
    root = Path(config.config_file_path).resolve().parent
    return replace_markers(markdown, root / RESULTS_DIR, root, page.file.src_uri)
