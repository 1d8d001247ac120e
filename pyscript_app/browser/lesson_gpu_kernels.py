"""The GPU kernels lesson's Python (PyScript worker). Logic: lessons/gpu_kernels.py, gpu/parity_runner.py.

Boot: read the tile constants from shaders/matmul.wgsl, show the tiling numbers for the chosen
shape, open WebGPU (or say why not). "Measure" runs the bench's matmul parity cases that exercise
the pipelines it is about to time (PASS/FAIL against the numpy reference computed at build time),
then times, at the chosen shape, the forward and backward matmul dispatches a training step makes.
"""

from __future__ import annotations

import json
import time

from pyscript_app.browser.bench_view import case_row, timing_row
from pyscript_app.browser.jsutil import fetch_bytes, fetch_text
from pyscript_app.browser.lesson_dom import (by_testid, enable, on, set_html, set_text, site_url, start, status,
                                             value_of)
from pyscript_app.browser.webgpu_executor import adapter_name, open_browser_device
from pyscript_app.gpu import parity_runner, registry
from pyscript_app.gpu.executor import GpuUnavailable
from pyscript_app.lessons.gpu_kernels import (SIZES, cases_for_timing, matmul_parity_cases, matmul_tiles, timing_case,
                                              tiling_stats)
from pyscript_app.lessons.gpu_kernels_view import stats_table, tiles_text


class GpuKernelsPage:
    def __init__(self) -> None:
        self.ex = None
        self.index: dict = {}
        self.source = registry.shader_source("matmul.wgsl")

    def size(self) -> int:
        value = int(value_of("matmul-size"))
        return value if value in SIZES else SIZES[0]

    def show_stats(self) -> None:
        n = self.size()
        tiles = matmul_tiles(self.source, n, n, n)
        set_text("matmul-tiles", tiles_text(tiles))
        set_html("tiling-stats", stats_table(n, n, n, tiling_stats(n, n, n, tiles)))

    async def boot(self) -> None:
        self.show_stats()
        on("matmul-size", "change", self.show_stats)
        enable("matmul-size")
        try:
            self.ex = await open_browser_device()
        except GpuUnavailable as e:
            set_text("gpu-adapter", "none")
            status("no-webgpu", str(e))
            return
        set_text("gpu-adapter", adapter_name(self.ex.adapter_info))
        self.index = parity_runner.load_index(json.loads(await fetch_text(site_url("py/refvectors/index.json"))))
        on("measure-button", "click", self.measure)
        enable("measure-button")
        status("ready", f"Ready: WebGPU is open; the bench has {len(matmul_parity_cases(self.index))} "
                        "matmul parity cases.")

    async def measure(self) -> None:
        button = by_testid("measure-button")
        if button.disabled:
            return
        button.disabled = True
        try:
            await self._measure()
        finally:
            button.disabled = False

    async def _measure(self) -> None:
        for testid in ("matmul-cases", "matmul-timings", "matmul-summary"):
            set_html(testid, "")
        t0 = time.perf_counter()
        n = self.size()
        timed = timing_case(n, n, n)
        cases = cases_for_timing(self.index, timed)
        results, rows = [], []
        for i, meta in enumerate(cases, 1):
            status("busy", f"Correctness: {i}/{len(cases)} {meta['name']}…")
            blob = await fetch_bytes(site_url(f"py/refvectors/{meta['file']}"))
            results.append(await parity_runner.run_case(self.ex, meta, blob))
            rows.append(case_row(results[-1]))
        set_html("matmul-cases", "".join(rows))
        summary = by_testid("matmul-summary")
        summary.textContent = parity_runner.summary_text(results)
        if not all(r.passed for r in results):
            status("ready", "A matmul case failed on this device: not timing it.")
            return
        status("busy", f"Timing the matmuls of a training step at {n} × {n} × {n}…")
        timings = await parity_runner.time_case(self.ex, timed, b"")
        set_html("matmul-timings", "".join(timing_row(t) for t in timings))
        by_testid("matmul-timings").setAttribute("data-size", str(n))
        status("ready", f"Done in {time.perf_counter() - t0:.1f} s.")


start(GpuKernelsPage().boot)
