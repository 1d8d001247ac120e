"""One playground run measured on either host: the page's Python (Pyodide, driven by runner.mjs) or
native Python over wgpu-py. Both train through the same calls the playground's worker makes
(browser/playground_page.py: parse_settings -> GpuBackend -> compile_pipelines(training_pipelines)
-> TrainingSession.run), so their per-step losses and tokens/s compare like for like.

    job = {"form": {...the playground form...}, "warmup_steps": 10, "replay": "javascript",
           "data_url": "file:///.../site/"}      # a folder holding py/data/ as the site build writes it
    result = await train_runs(ex, data, job)      # {"warmup": run, "timed": run}
    # in Pyodide (runner.mjs):  await page_main(job_json) -> result JSON
    # natively:  python playground_run.py --gpu dawn --job JOB.json --out RESULT.json

A run is a warm-up session of `warmup_steps` steps, then the timed session of the form's `steps` on
the same backend: the page's second Train click (its plan already recorded, its pipelines compiled).
Each run reports the Trainer's tokens/s (time in training steps and their loss read-backs, the
figure the page shows), every step's loss, and the session's host timing (RecordingBackend).
Pure Python at import time: the host's modules are imported where they are used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from statistics import median


async def train_session(backend, data, settings, emit_done) -> dict:
    """One Train click's session on `backend` (the page's _train after its backend is ready)."""
    from pyscript_app.playground.session import TrainingSession
    from pyscript_app.playground.store import CheckpointStore, MemoryFiles

    session = TrainingSession(settings, data, backend, CheckpointStore(MemoryFiles()),
                              settings.run_key(data.data_id), meta={"backend": backend.describe()})
    t0 = time.perf_counter()
    # the page marks the end of the first step (its loss read at once: RecordingBackend.on_first_step)
    progress = await session.run(emit_done, on_first_step=lambda: None)
    timing = dict(progress.timing)
    step_ms = timing.pop("step_ms", [])
    return {
        "steps": progress.step, "tokens_per_s": progress.tokens_per_s, "ms_per_step": progress.ms_per_step,
        "host_share": progress.host_share, "host_ms_per_step_median": median(step_ms) if step_ms else None,
        "val_loss": progress.val_loss, "losses": list(progress.step_losses), "timing": timing,
        "session_wall_s": time.perf_counter() - t0,
    }


async def train_runs(ex, data, job: dict) -> dict:
    """The warm-up and the timed session on executor `ex` (either host), as the page runs them."""
    from pyscript_app.gpu.trainer_backend import GpuBackend
    from pyscript_app.playground.pipeline_plan import training_pipelines
    from pyscript_app.playground.settings import parse_settings

    settings = parse_settings({k: str(v) for k, v in job["form"].items()})
    cfg = settings.train_config()
    data.check_fits(cfg.seq_len)
    backend = GpuBackend(cfg.model_cfg(), cfg, ex)
    if hasattr(ex, "js_replay"):  # the page: steps replay in step_replay.js unless ?replay=python
        ex.js_replay = ex.step_replay is not None and job.get("replay", "javascript") != "python"
    t0 = time.perf_counter()
    await ex.compile_pipelines(training_pipelines(cfg.model_cfg(), cfg))
    compile_s = time.perf_counter() - t0

    def emit(event: dict, progress) -> None:
        if event["type"] == "done":
            progress.timing["dispatches_per_step"] = backend.step_dispatches

    out = {"compile_s": compile_s, "backend": backend.describe(),
           "replay": ("javascript" if ex.js_replay else "python") if hasattr(ex, "js_replay") else "native"}
    warmup = int(job.get("warmup_steps", 0))
    if warmup > 0:
        warm = parse_settings({**{k: str(v) for k, v in job["form"].items()}, "steps": str(warmup),
                               "checkpoint_every": str(warmup)})
        backend.train_cfg = warm.train_config()
        out["warmup"] = await train_session(backend, data, warm, emit)
    backend.train_cfg = cfg  # lr and steps come per step; the rest is the same for every run (the page)
    out["timed"] = await train_session(backend, data, settings, emit)
    return out


async def page_main(job_json: str) -> str:
    """In Pyodide (runner.mjs): the page's device and data, then train_runs; the result as JSON."""
    from pyscript_app.browser.playground_data import SiteData
    from pyscript_app.browser.webgpu_executor import open_browser_device

    job = json.loads(job_json)
    t0 = time.perf_counter()
    ex = await open_browser_device(allow_fallback=True)  # as PlaygroundPage.open_device
    device_s = time.perf_counter() - t0
    site = SiteData(lambda path: job["data_url"] + path)
    await site.load_index()
    data = await site.dataset(job["form"]["dataset"])
    result = {"host": "pyodide", "adapter_info": dict(ex.adapter_info), "replay_mode": ex.replay_mode,
              "device_s": device_s, **await train_runs(ex, data, job)}
    errors = ex.take_errors()
    if errors:
        result["webgpu_errors"] = errors[:20]
    return json.dumps(result)


def native_main(job: dict, gpu: str) -> dict:
    """Natively: open_device(gpu) and the data files the page fetches, read from disk."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    from pyscript_app.data.bpe import Tokenizer
    from pyscript_app.data.tokenfile import read_tokens
    from pyscript_app.gpu.native import open_device
    from pyscript_app.playground.textdata import registry_data

    folder = Path(url2pathname(urlparse(job["data_url"]).path)) / "py" / "data"
    name = job["form"]["dataset"]
    files = json.loads((folder / "index.json").read_text())["datasets"][name]["files"]
    tok = Tokenizer.from_json((folder / files["tokenizer"]).read_bytes())
    data = registry_data(name, tok, read_tokens(folder / files["train"], tok), read_tokens(folder / files["val"], tok))
    t0 = time.perf_counter()
    ex = open_device(gpu)
    device_s = time.perf_counter() - t0
    return {"host": "native", "adapter_info": {k: str(v) for k, v in ex.adapter_info.items()},
            "device_s": device_s, **asyncio.run(train_runs(ex, data, job))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="One playground run on the native host (wgpu-py).")
    ap.add_argument("--gpu", required=True, choices=("dawn", "wgpu-native"))
    ap.add_argument("--job", required=True, help="the job's JSON file")
    ap.add_argument("--out", required=True, help="write the result's JSON here")
    args = ap.parse_args(argv)
    repo = Path(__file__).resolve().parents[2]
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from pyscript_app.gpu.executor import GpuUnavailable

    try:
        result = native_main(json.loads(Path(args.job).read_text()), args.gpu)
    except (GpuUnavailable, OSError, ValueError, KeyError) as e:
        print(f"playground_run: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    Path(args.out).write_text(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
