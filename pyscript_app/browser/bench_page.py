"""The bench page's Python (runs in a PyScript worker; DOM through pyscript.document).

Boot: open WebGPU (or show why not), load py/refvectors/index.json, enable "run-bench". A click runs
the correctness gate (every parity case: PASS/FAIL with max error; "N passed, M failed" in
bench-summary), then times each kernel of the passing cases, then a training step per preset (dispatches, ms, tokens/s;
gpu/step_bench.py) and where nano's step time goes, then offers the results as JSON. The step
benchmark runs only when the whole gate passed.
The logic lives in pure modules: gpu/parity_runner.py (gate, timing, report), browser/bench_view.py.
"""

from __future__ import annotations

import asyncio
import json
import time

from pyodide.ffi import create_proxy
from pyscript import window

from pyscript_app.browser.bench_view import case_row, json_data_url, share_row, step_row, timing_row
from pyscript_app.browser.dom import by_testid, set_text, site_url, start_page
from pyscript_app.browser.jsutil import fetch_bytes, fetch_text
from pyscript_app.browser.webgpu_executor import adapter_name, open_browser_device
from pyscript_app.gpu import parity_runner, step_bench
from pyscript_app.gpu.executor import GpuUnavailable

STEP_MODELS = ("nano", "tiny")  # presets timed on the page (batch 8, full context): quick even on a CPU adapter
PROFILE_MODEL = "nano"  # the preset whose step is broken down per kernel


class BenchPage:
    def __init__(self) -> None:
        self.ex = None
        self.index: dict = {}
        self.running = False
        self._on_click = create_proxy(self.on_click)
        self._tasks: set[asyncio.Task] = set()

    async def boot(self) -> None:
        by_testid("bench-status").setAttribute("data-python-ms", str(round(window.performance.now())))
        set_text("bench-status", "Opening WebGPU…")
        try:
            self.ex = await open_browser_device()
        except GpuUnavailable as e:
            set_text("bench-adapter", "none")
            set_text("bench-status", str(e))
            by_testid("bench-status").setAttribute("data-state", "no-webgpu")
            return
        set_text("bench-adapter", adapter_name(self.ex.adapter_info))
        self.index = parity_runner.load_index(json.loads(await fetch_text(site_url("py/refvectors/index.json"))))
        skipped = len(self.index.get("skipped", []))
        button = by_testid("run-bench")
        button.addEventListener("click", self._on_click)
        button.disabled = False
        status = by_testid("bench-status")
        status.setAttribute("data-ready-ms", str(round(window.performance.now())))
        status.setAttribute("data-state", "ready")
        status.textContent = (f"Ready: {len(self.index['cases'])} parity cases"
                              + (f" ({skipped} left out: kernels not in this build, or GPU-only kernels that need "
                                 "more workgroup memory than WebGPU's default 16 KiB)" if skipped else "") + ".")

    def on_click(self, _event) -> None:
        if not self.running:
            task = asyncio.ensure_future(self.run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        self.running = True
        by_testid("run-bench").disabled = True
        try:
            await self._run()
        except Exception as e:
            set_text("bench-status", f"The bench stopped: {type(e).__name__}: {e}")
            by_testid("bench-status").setAttribute("data-state", "error")
            raise
        finally:
            self.running = False
            by_testid("run-bench").disabled = False

    async def _run(self) -> None:
        cases = self.index["cases"]
        for testid in ("bench-cases", "bench-timings", "bench-steps", "bench-profile"):
            by_testid(testid).innerHTML = ""
        set_text("bench-summary", "")
        by_testid("bench-download").hidden = True
        results, blobs = [], {}
        t0 = time.perf_counter()
        for i, meta in enumerate(cases, 1):
            set_text("bench-status", f"Correctness gate: {i}/{len(cases)} {meta['name']}…")
            try:
                blobs[meta["name"]] = await fetch_bytes(site_url(f"py/refvectors/{meta['file']}"))
            except OSError as e:
                result = parity_runner.CaseResult(meta["name"], list(meta["kernels"]), error=str(e))
            else:
                result = await parity_runner.run_case(self.ex, meta, blobs[meta["name"]])
            results.append(result)
            by_testid("bench-cases").insertAdjacentHTML("beforeend", case_row(result))
        gate_s = time.perf_counter() - t0
        summary = by_testid("bench-summary")
        summary.setAttribute("data-gate-seconds", f"{gate_s:.2f}")
        summary.textContent = parity_runner.summary_text(results)

        timings = []
        passing = [m for m, r in zip(cases, results) if r.passed]
        for i, meta in enumerate(passing, 1):
            set_text("bench-status", f"Timing: {i}/{len(passing)} {meta['name']}…")
            for t in await parity_runner.time_case(self.ex, meta, blobs[meta["name"]]):
                timings.append(t)
                by_testid("bench-timings").insertAdjacentHTML("beforeend", timing_row(t))
        steps = await self._time_steps() if len(passing) == len(cases) else {}
        report = parity_runner.report(
            self.ex.adapter_info, results, timings, **steps, date=str(window.Date.new().toISOString()),
            gate_seconds=round(gate_s, 3), bench_seconds=round(time.perf_counter() - t0, 3),
            ready_ms=float(by_testid("bench-status").getAttribute("data-ready-ms")))
        link = by_testid("bench-download")
        link.href = json_data_url(report)
        link.hidden = False
        status = by_testid("bench-status")
        status.setAttribute("data-state", "done")
        status.textContent = f"Done in {time.perf_counter() - t0:.1f} s (gate {gate_s:.1f} s)."

    async def _time_steps(self) -> dict:
        """The training-step table (STEP_MODELS) and PROFILE_MODEL's per-kernel profile, as report fields."""
        rows = []
        for name in STEP_MODELS:
            set_text("bench-status", f"Training step: {name}…")
            t = await step_bench.time_step(self.ex, name, batch=8, repeats=3, runs=3)
            rows.append(t.to_json())
            by_testid("bench-steps").insertAdjacentHTML("beforeend", step_row(t))
        set_text("bench-status", f"Profiling a {PROFILE_MODEL} step…")
        be, _, _ = await step_bench.make_backend(self.ex, PROFILE_MODEL, batch=8)
        shares, whole_ms = await step_bench.profile_step(self.ex, be, reps=5)
        by_testid("bench-profile").innerHTML = "".join(share_row(s, whole_ms) for s in shares)
        set_text("bench-profile-total", f"{whole_ms:.3g} ms per {PROFILE_MODEL} step (batch 8), replayed whole")
        return {"steps": rows, "step_profile": {"model": PROFILE_MODEL, "batch": 8, "whole_ms": whole_ms,
                                                "shares": [s.to_json() for s in shares]}}


_boot = start_page(lambda: BenchPage().boot(), "bench-status", "The bench")  # kept referenced
