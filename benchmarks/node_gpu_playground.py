"""The playground's Python on a GPU without a browser, beside native Dawn on the same GPU in the same call.

    python benchmarks/node_gpu_playground.py [--engine dawn-node|deno-builtin] [--native dawn|wgpu-native]
        [--models tiny,small,medium,large] [--steps 50] [--warmup 10] [--batch 8] [--dataset names]
        [--bundle .node_gpu/bundle.tar.xz] [--dawn-option X]... [--feature-level core|compatibility]
        [--native-runs 2] [--timeout 150] [--budget-s 330] [--json FILE]

For each preset: the native host (a child Python: wgpu-py over --native), then the page's host
(benchmarks/node_gpu/runner.mjs: Pyodide in Node.js with dawn.node, or in Deno with its own WebGPU,
running the worker's BrowserExecutor, step_replay.js and TrainingSession), then the native host
again (--native-runs 2). Both run benchmarks/node_gpu/playground_run.py's train_runs: a warm-up
session of --warmup steps, then the timed session of --steps on the same backend, as a second Train
click on the page would. The figure is the Trainer's tokens/s of the timed session (time in steps
and their loss read-backs, evaluations excluded: what the page shows); the ratio is the page's
against the faster native run (a busy machine slows whichever runs at the time). Every step's loss
of the page's run is compared with the native run's: same data, seed and kernels, so they differ by
float rounding at most (the largest relative difference is reported, and whether they are equal).

Without --bundle the runtime is `node` on PATH (dawn-node) or npm's Deno (deno-builtin), the npm
packages come from node_modules/ (`npm ci`), and the data sets are prepared here as the site build
does; with --bundle (benchmarks/node_gpu/bundle.py) all of it comes from that one file. A preset
that fails is recorded with its error and the others still run; the JSON is rewritten after each.
No host run goes past --budget-s from the start (what did not run is recorded as skipped). Exit
code 0 when every host run finished, 1 when one failed or was skipped, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.node_gpu.bundle import BundleError, RuntimePaths, local_paths, open_bundle, site_data  # noqa: E402
from pyscript_app.config import PRESETS  # noqa: E402

RUNNER = REPO / "benchmarks" / "node_gpu" / "runner.mjs"
DRIVER = REPO / "benchmarks" / "node_gpu" / "playground_run.py"
ENGINES = ("dawn-node", "deno-builtin")
GOALS = {"tiny": 0.5, "small": 0.8, "medium": 0.8, "large": 0.8}  # issue 21: page ÷ native tokens/s
STDERR_TAIL = 2000
MIN_RUN_S = 5.0  # a host run given less time than this is not started


class UsageError(Exception):
    """Bad arguments; the message is one line."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engine", default="dawn-node", choices=ENGINES)
    ap.add_argument("--native", default="dawn", choices=("dawn", "wgpu-native"))
    ap.add_argument("--models", default="tiny,small,medium,large", help="presets separated by commas")
    ap.add_argument("--steps", type=int, default=50, help="timed steps per preset")
    ap.add_argument("--warmup", type=int, default=10, help="warm-up steps per preset (a session before)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--dataset", default="names", choices=("names", "shakespeare"))
    ap.add_argument("--bundle", type=Path, help="benchmarks/node_gpu/bundle.py's file: the runtime, packages, data")
    ap.add_argument("--dawn-option", action="append", default=[], help="passed to dawn.node's create()")
    ap.add_argument("--feature-level", default="core", choices=("core", "compatibility"))
    ap.add_argument("--native-runs", type=int, default=2, choices=(0, 1, 2),
                    help="native runs per preset: before the page's (1), and after it (2)")
    ap.add_argument("--timeout", type=float, default=150.0, help="seconds per host run at most")
    ap.add_argument("--budget-s", type=float, default=330.0,
                    help="seconds for the whole call: no host run goes past it (what is left is recorded as skipped)")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    args.model_list = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.model_list if m not in PRESETS]
    if not args.model_list or unknown:
        raise UsageError(f"unknown model {', '.join(unknown) or '(none)'} (choose from {', '.join(PRESETS)})")
    for name, low in (("steps", 1), ("warmup", 0), ("batch", 1)):
        if getattr(args, name) < low:
            raise UsageError(f"--{name} must be at least {low}, got {getattr(args, name)}")
    if args.bundle is not None and args.engine != "dawn-node":
        raise UsageError("--bundle carries Node.js and dawn.node: it runs --engine dawn-node")
    return args


def job_for(args: argparse.Namespace, model: str, paths: RuntimePaths) -> dict:
    form = {"dataset": args.dataset, "model": model, "steps": args.steps, "batch": args.batch,
            "checkpoint_every": args.steps, "samples": 0}
    return {"form": form, "warmup_steps": args.warmup, "replay": "javascript",
            "data_url": paths.data_root.resolve().as_uri() + "/", "repo": str(REPO)}


def run_child(cmd: list[str], out: Path, timeout: float, deadline: float) -> dict:
    """Run one host for at most `timeout` s and not past `deadline` (perf_counter); its result JSON,
    or {"error": ...} with the tail of its stderr."""
    t0 = time.perf_counter()
    timeout = min(timeout, deadline - t0)
    if timeout < MIN_RUN_S:
        return {"error": "skipped: the call's time budget is spent", "command": shlex.join(cmd)}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "command": shlex.join(cmd)}
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out.is_file():
        return {"error": f"exit code {proc.returncode}", "stderr_tail": proc.stderr[-STDERR_TAIL:],
                "command": shlex.join(cmd)}
    result = json.loads(out.read_text())
    result["wall_s"] = wall
    return result


def page_command(args: argparse.Namespace, paths: RuntimePaths, job: Path, out: Path) -> list[str]:
    tail = [str(RUNNER), "--engine", args.engine, "--job", str(job), "--out", str(out),
            "--pyodide", str(paths.pyodide), "--feature-level", args.feature_level]
    if args.engine == "dawn-node":
        tail += ["--webgpu", str(paths.webgpu)] + [x for o in args.dawn_option for x in ("--dawn-option", o)]
        return [str(paths.runtime), *tail]
    return [str(paths.runtime), "run", "-A", "--unstable-webgpu", "--no-config", *tail]


def compare_losses(page: list[float], native: list[float]) -> dict:
    """Per-step agreement of two loss sequences (relative to the native loss)."""
    n = min(len(page), len(native))
    diffs = [abs(a - b) for a, b in zip(page, native)]
    rel = [d / abs(b) if b else math.inf for d, b in zip(diffs, native)]
    return {"steps_compared": n, "same_length": len(page) == len(native), "equal": page == native,
            "max_abs_diff": max(diffs, default=None), "max_rel_diff": max(rel, default=None),
            "first_differing_step": next((i + 1 for i, d in enumerate(diffs) if d), None)}


def preset_result(model: str, page: dict, natives: list[dict]) -> dict:
    """The table row and the per-step comparison of one preset."""
    ok = [n for n in natives if "error" not in n]
    row: dict = {"model": model, "goal": GOALS.get(model)}
    if "error" not in page:
        row["page_tokens_per_s"] = page["timed"]["tokens_per_s"]
    if ok:
        best = max(ok, key=lambda n: n["timed"]["tokens_per_s"])
        row["native_tokens_per_s"] = best["timed"]["tokens_per_s"]
        row["native_tokens_per_s_runs"] = [n["timed"]["tokens_per_s"] for n in ok]
    if "page_tokens_per_s" in row and "native_tokens_per_s" in row:
        row["ratio"] = row["page_tokens_per_s"] / row["native_tokens_per_s"]
        row["meets_goal"] = row["ratio"] >= row["goal"] if row["goal"] is not None else None
        for part in ("warmup", "timed"):
            if part in page and part in ok[0]:
                row[f"losses_{part}"] = compare_losses(page[part]["losses"], ok[0][part]["losses"])
        row["native_runs_equal"] = all(n["timed"]["losses"] == ok[0]["timed"]["losses"] for n in ok)
    return row


def run_preset(args: argparse.Namespace, model: str, paths: RuntimePaths, tmp: Path, deadline: float) -> dict:
    job_path = tmp / f"{model}.job.json"
    job_path.write_text(json.dumps(job_for(args, model, paths)))

    def native(i: int) -> dict:
        out = tmp / f"{model}.native{i}.json"
        cmd = [sys.executable, str(DRIVER), "--gpu", args.native, "--job", str(job_path), "--out", str(out)]
        return run_child(cmd, out, args.timeout, deadline)

    natives = [native(0)] if args.native_runs >= 1 else []
    page_out = tmp / f"{model}.page.json"
    page = run_child(page_command(args, paths, job_path, page_out), page_out, args.timeout, deadline)
    if args.native_runs >= 2:
        natives.append(native(1))
    return {"row": preset_result(model, page, natives), "page": page, "native": natives}


def machine() -> dict:
    return {"host": platform.node(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "load_average": list(os.getloadavg())}


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except UsageError as e:
        print(f"node_gpu_playground: {e}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    result: dict = {
        "what": "the playground's Python (Pyodide, BrowserExecutor, step_replay.js, TrainingSession) on "
                f"{args.engine} beside native {args.native} (wgpu-py) on the same GPU: the Trainer's tokens/s "
                f"of a {args.steps}-step session after a {args.warmup}-step one, per preset; ratio = page / "
                "the faster native run; losses compared step by step",
        "command": shlex.join([Path(sys.executable).name, *sys.argv]) if argv is None else shlex.join(argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
        "engine": args.engine, "native_engine": args.native, "feature_level": args.feature_level,
        "settings": {"dataset": args.dataset, "batch": args.batch, "steps": args.steps, "warmup": args.warmup},
        "table": [], "runs": {},
    }

    def write() -> None:
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1) + "\n")

    with tempfile.TemporaryDirectory(prefix="node-gpu-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            if args.bundle is not None:
                paths = open_bundle(args.bundle, tmp / "bundle")
                result["bundle"] = json.loads((tmp / "bundle" / "bundle.json").read_text())
                result["bundle"].pop("files", None)
            else:
                paths = local_paths(REPO, args.engine, site_data(tmp / "site", (args.dataset,)))
        except BundleError as e:
            print(f"node_gpu_playground: {e}", file=sys.stderr)
            return 2
        deadline = started + args.budget_s
        for model in args.model_list:
            if deadline - time.perf_counter() < MIN_RUN_S:
                result["runs"][model] = {"skipped": f"the {args.budget_s:.0f} s budget is spent"}
                continue
            run = run_preset(args, model, paths, tmp, deadline)
            result["table"].append(run.pop("row"))
            result["runs"][model] = run
            print(json.dumps(result["table"][-1]), flush=True)
            write()
    for side in ("page", "native"):  # one copy of each host's description, from its first run
        for run in result["runs"].values():
            first = run.get(side)
            first = first[0] if isinstance(first, list) and first else first
            if isinstance(first, dict) and "adapter_info" in first:
                result[f"{side}_host"] = {k: v for k, v in first.items() if k not in ("warmup", "timed", "wall_s")}
                break
    result["wall_s"] = time.perf_counter() - started
    write()
    failed = [m for m, run in result["runs"].items()
              if "skipped" in run or "error" in run["page"] or any("error" in n for n in run["native"])]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
