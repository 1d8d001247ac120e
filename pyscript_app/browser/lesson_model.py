"""The model lesson's Python (PyScript worker). Logic: lessons/model.py; HTML: lessons/model_view.py.

Boot: the parameter calculator (presets or the reader's L, C, H, T, V), recomputed on every edit;
then WebGPU is opened for the parity badges. Each operation's "Check" button (and "Check every
operation") runs the bench's parity cases of that operation's .wgsl file with gpu/parity_runner.py
on this page's WebGPU device, against outputs the numpy reference computed at build time.
"""

from __future__ import annotations

import json

from pyscript_app.browser.jsutil import fetch_bytes, fetch_text
from pyscript_app.browser.lesson_dom import (by_testid, enable, on, set_html, set_text, site_url, start, status,
                                             value_of)
from pyscript_app.browser.webgpu_executor import adapter_name, open_browser_device
from pyscript_app.config import ConfigError
from pyscript_app.gpu import parity_runner
from pyscript_app.gpu.executor import GpuUnavailable
from pyscript_app.lessons.model import OPERATIONS, Operation, cases_for, model_from_form
from pyscript_app.lessons.model_view import badge, formula_line, params_table, presets_table

CUSTOM_FIELDS = {"n_layer": "custom-L", "n_embd": "custom-C", "n_head": "custom-H", "block_size": "custom-T",
                 "vocab_size": "custom-V"}


class ModelPage:
    def __init__(self) -> None:
        self.ex = None
        self.index: dict = {}
        self.busy = False

    async def boot(self) -> None:
        set_html("presets-table", presets_table())
        self.show_params()
        on("model-choice", "change", self.show_params)
        for testid in CUSTOM_FIELDS.values():
            on(testid, "input", self.show_params)
        enable("model-choice", *CUSTOM_FIELDS.values())
        for op in OPERATIONS:
            self.show_badge(op, None)
        try:
            self.ex = await open_browser_device()
        except GpuUnavailable as e:
            set_text("gpu-adapter", "none")
            status("no-webgpu", f"The calculator works; the parity badges need WebGPU: {e}")
            return
        set_text("gpu-adapter", adapter_name(self.ex.adapter_info))
        self.index = parity_runner.load_index(json.loads(await fetch_text(site_url("py/refvectors/index.json"))))
        for op in OPERATIONS:
            on(f"check-{op.key}", "click", lambda op=op: self.check([op]))
        on("check-all", "click", lambda: self.check(list(OPERATIONS)))
        enable("check-all", *(f"check-{op.key}" for op in OPERATIONS))
        status("ready", "Ready: WebGPU is open.")

    def show_params(self) -> None:
        choice = value_of("model-choice")
        custom = {}
        for name, testid in CUSTOM_FIELDS.items():
            try:
                custom[name] = int(value_of(testid))
            except ValueError:
                custom[name] = None
            by_testid(testid).disabled = choice != "custom"
        try:
            cfg = model_from_form(choice, custom)
        except ConfigError as e:
            set_text("params-error", str(e))
            return
        set_text("params-error", "")
        set_html("params-table", params_table(cfg))
        set_text("params-formula", formula_line(cfg))
        by_testid("params-table").setAttribute("data-total", str(cfg.param_count))

    def show_badge(self, op: Operation, results, running: str = "") -> None:
        state, text = badge(results, running)
        element = by_testid(f"parity-{op.key}")
        element.textContent = text
        element.setAttribute("data-state", state)

    async def check(self, ops: list[Operation]) -> None:
        if self.busy:
            return
        self.busy = True
        try:
            for op in ops:
                await self.check_one(op)
            status("ready", "Done.")
        finally:
            self.busy = False

    async def check_one(self, op: Operation) -> None:
        cases = cases_for(self.index, op)
        results = []
        for i, meta in enumerate(cases, 1):
            self.show_badge(op, None, f"{i}/{len(cases)} {meta['name']}")
            status("busy", f"{op.title}: parity case {i}/{len(cases)}…")
            blob = await fetch_bytes(site_url(f"py/refvectors/{meta['file']}"))
            results.append(await parity_runner.run_case(self.ex, meta, blob))
        self.show_badge(op, results)


start(ModelPage().boot)
