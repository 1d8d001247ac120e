"""The bench page's Python (runs in a PyScript worker; DOM through pyscript.document).

Boot: open WebGPU (or show why not), load py/refvectors/index.json, enable "run-bench". A click runs
the correctness gate (every parity case: PASS/FAIL with max error; "N passed, M failed" in
bench-summary), then times each kernel of the passing cases, then offers the results as JSON.
The logic lives in pure modules: gpu/parity_runner.py (gate, timing, report), browser/bench_view.py.
"""

from __future__ import annotations

import asyncio
import json
import time

from pyodide.ffi import create_proxy
from pyscript import window

from pyscript_app.browser.bench_view import case_row, json_data_url, timing_row
from pyscript_app.browser.dom import by_testid, set_text, site_url, start_page
from pyscript_app.browser.jsutil import fetch_bytes, fetch_text
from pyscript_app.browser.webgpu_executor import adapter_name, open_browser_device
from pyscript_app.gpu import parity_runner
from pyscript_app.gpu.executor import GpuUnavailable


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
                              + (f" ({skipped} skipped: kernels not in this build)" if skipped else "") + ".")

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
        for testid in ("bench-cases", "bench-timings"):
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
        report = parity_runner.report(
            self.ex.adapter_info, results, timings, date=str(window.Date.new().toISOString()),
            gate_seconds=round(gate_s, 3), bench_seconds=round(time.perf_counter() - t0, 3),
            ready_ms=float(by_testid("bench-status").getAttribute("data-ready-ms")))
        link = by_testid("bench-download")
        link.href = json_data_url(report)
        link.hidden = False
        status = by_testid("bench-status")
        status.setAttribute("data-state", "done")
        status.textContent = f"Done in {time.perf_counter() - t0:.1f} s (gate {gate_s:.1f} s)."


_boot = start_page(lambda: BenchPage().boot(), "bench-status", "The bench")  # kept referenced
