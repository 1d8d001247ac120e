"""The playground's three measured figures, rerunnable: headless Chromium here against the native host.

    .venv/bin/python benchmarks/browser_playground.py [--steps 30] [--batch 8] [--model nano] [--json FILE] [--site DIR]
                                                      [--default-chromium]

1. Time from page load to the first training step: the page's own clock (performance.now(), from the
   navigation of the document that trains) when the GPU has finished step 1, the Train button
   being clicked as soon as the page is ready; marks on the way (Python running, page ready, data
   loaded, buffers made). Also the wall time from Playwright's goto, which adds mini-coi's one-time
   service-worker reload, and the same run once more after a reload of the page.
2. The longest main-thread task while training (Long Tasks API, PerformanceObserver "longtask",
   tasks that started after the click).
3. Browser tokens/s ÷ native tokens/s: the Trainer's own tokens/s at the end of the same run
   (same preset, data, batch, steps, seed), in the browser (Pyodide + Chromium's WebGPU adapter)
   and natively (wgpu-native, same Python). Both compile the run's pipelines before the Trainer
   starts its clock (the page does it at boot; native_run does it as the page does), so neither
   figure includes compilation. Native runs once before and once after the browser; the ratio is
   against the faster of the two (a busy machine slows whichever runs at the time).
Chromium runs with the tests' flags (tests/_browser.py CHROMIUM_ARGS: no Dawn workgroup-memory
zero-fill) unless --default-chromium asks for a user's defaults (DEFAULT_CHROMIUM_ARGS).
The site is built into a temporary folder (mkdocs build --strict) unless --site names a built one;
a plain static server serves it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from _browser import CHROMIUM_ARGS, DEFAULT_CHROMIUM_ARGS, build_site, serve_directory  # noqa: E402
from _playground import (FINISHED, STATUS, fill, long_tasks_since, loss_log, open_playground,  # noqa: E402
                         page_marks, wait_ready, wait_state)
from _require import find_chromium  # noqa: E402


def browser_run(site: Path, form: dict, chromium_args: tuple[str, ...]) -> dict:
    from playwright.sync_api import sync_playwright

    server = serve_directory(site)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=list(chromium_args))
        t0 = time.perf_counter()
        rec = open_playground(browser, server)
        page = rec.page
        fill(page, **form)
        clicked_ms = page.evaluate("performance.now()")
        page.click('[data-testid="train-button"]')
        state = wait_state(page, FINISHED, 600_000)
        wall_s = time.perf_counter() - t0
        if state != "done":
            raise RuntimeError(page.text_content(STATUS))
        marks = page_marks(page)
        tasks = long_tasks_since(page, clicked_ms)
        out = {
            "adapter": page.text_content('[data-testid="backend"]'), "chromium_args": list(chromium_args),
            "user_agent": page.evaluate("navigator.userAgent"),
            "python_ready_s": marks["python"], "page_ready_s": marks["ready"], "train_clicked_s": clicked_ms / 1e3,
            "data_loaded_s": marks["data"], "buffers_made_s": marks["backend"],
            "first_step_s": marks["first-step"], "goto_to_done_wall_s": round(wall_s, 2),
            "long_tasks_while_training": len(tasks), "longest_task_ms": max(tasks, default=0.0),
            "tokens_per_s": float(page.get_attribute('[data-testid="tokens-per-s"]', "data-value")),
            "losses": loss_log(page)["losses"], "timing": loss_log(page)["timing"],
        }
        # the same run again after a reload: the browser may have kept the compiled pipelines
        page.reload()
        wait_ready(page)
        fill(page, **form)
        clicked_ms = page.evaluate("performance.now()")
        page.click('[data-testid="train-button"]')
        if wait_state(page, FINISHED, 600_000) != "done":
            raise RuntimeError(page.text_content(STATUS))
        again = page_marks(page)
        out["reload"] = {"page_ready_s": again["ready"], "train_clicked_s": clicked_ms / 1e3,
                         "first_step_s": again["first-step"],
                         "tokens_per_s": float(page.get_attribute('[data-testid="tokens-per-s"]', "data-value"))}
        rec.close()
        browser.close()
    server.httpd.shutdown()
    return out


def native_run(site: Path, form: dict) -> dict:
    from pyscript_app.data.bpe import Tokenizer
    from pyscript_app.gpu.executor import run_sync
    from pyscript_app.gpu.native import open_device
    from pyscript_app.gpu.trainer_backend import GpuBackend
    from pyscript_app.playground.session import TrainingSession
    from pyscript_app.playground.settings import parse_settings
    from pyscript_app.playground.store import CheckpointStore, MemoryFiles
    from pyscript_app.playground.textdata import registry_data
    from pyscript_app.data.tokenfile import read_tokens

    data_dir = site / "py" / "data"
    name = form["dataset"]
    tok = Tokenizer.from_json((data_dir / f"{name}.tokenizer.json").read_bytes())
    data = registry_data(name, tok, read_tokens(data_dir / f"{name}.train.bin", tok),
                         read_tokens(data_dir / f"{name}.val.bin", tok))
    settings = parse_settings({k: str(v) for k, v in form.items()})
    cfg = settings.train_config()
    from pyscript_app.playground.pipeline_plan import training_pipelines

    ex = open_device("wgpu-native")
    t0 = time.perf_counter()
    run_sync(ex.compile_pipelines(training_pipelines(cfg.model_cfg(), cfg)))  # as the page does at boot
    compile_s = time.perf_counter() - t0
    session = TrainingSession(settings, data, GpuBackend(cfg.model_cfg(), cfg, ex),
                              CheckpointStore(MemoryFiles()), settings.run_key(data.data_id))
    progress = asyncio.run(session.run(lambda event, progress: None))
    return {"adapter": f"{ex.engine}: {ex.adapter_info.get('device')}", "compile_s": round(compile_s, 2),
            "tokens_per_s": progress.tokens_per_s,
            "losses": progress.step_losses, "timing": progress.timing}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="nano")
    ap.add_argument("--dataset", default="names")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--site", help="an already built site (mkdocs build) instead of building one")
    ap.add_argument("--default-chromium", action="store_true",
                    help="Chromium's default WebGPU settings (with Dawn's workgroup-memory zero-fill)")
    args = ap.parse_args()
    form = {"dataset": args.dataset, "model": args.model, "steps": args.steps, "batch": args.batch,
            "checkpoint_every": args.steps, "samples": 0}
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(args.site) if args.site else build_site(Path(tmp) / "site")
        # native before and after the browser: a busy machine slows whichever runs at the time, so the
        # ratio is taken against the faster native run (the conservative choice)
        before = native_run(site, form)
        browser = browser_run(site, form, DEFAULT_CHROMIUM_ARGS if args.default_chromium else CHROMIUM_ARGS)
        after = native_run(site, form)
    native = max(before, after, key=lambda r: r["tokens_per_s"])
    worst = max(abs(b - n) / abs(n) for b, n in zip(browser["losses"], native["losses"]))
    result = {
        "date": date.today().isoformat(), "machine": f"{platform.node()} {platform.machine()}, "
        f"{__import__('os').cpu_count()} cores", "load_average": __import__("os").getloadavg(), "form": form,
        "browser": browser, "native": native,
        "native_tokens_per_s_before_after": [before["tokens_per_s"], after["tokens_per_s"]],
        "tokens_per_s_ratio": browser["tokens_per_s"] / native["tokens_per_s"],
        "worst_relative_loss_difference": worst,
    }
    for host in ("browser", "native"):
        result[host].pop("losses")
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
