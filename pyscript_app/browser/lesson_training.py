"""The training lesson's Python (PyScript worker). Logic: lessons/training.py; HTML: training_view.py.

Boot plots the LR schedule of the run on the form, opens WebGPU, fetches the names data set the
site ships (py/data/, through the playground's SiteData) and initialises nano on the GPU backend.
"Step" trains one step and shows a training position of the next batch with the model's current
predictions (from the weights read back, run through lessons/tinyforward.py). "Train" runs to the
end of the schedule, reading the loss every 10 steps and one tensor's weights and gradients every
20 (a few KB each: cheap). Nothing else is read back while training.
"""

from __future__ import annotations

import asyncio

from pyscript_app.browser.lesson_dom import (by_testid, enable, int_value, on, set_html, set_text, site_url, start,
                                             status, value_of)
from pyscript_app.browser.playground_data import SiteData
from pyscript_app.browser.webgpu_executor import adapter_name, open_browser_device
from pyscript_app.train.checkpoint import floats
from pyscript_app.gpu.executor import GpuUnavailable
from pyscript_app.gpu.trainer_backend import GpuBackend
from pyscript_app.lessons.lesson_checkpoint import token_label
from pyscript_app.lessons.tinyforward import TinyGPT
from pyscript_app.lessons.training import (HEATMAP_TENSORS, SteppedRun, lesson_config, lr_points, position_views,
                                           tensor_rows, uniform_loss)
from pyscript_app.lessons.training_view import adam_text, lr_chart, matrix_heat_map, position_html, schedule_text
from pyscript_app.playground.chart import loss_chart_svg

LOSS_EVERY, TENSORS_EVERY = 10, 20  # steps between readbacks while training
MAX_STEPS = 2000


class TrainingPage:
    def __init__(self) -> None:
        self.ex = None
        self.backend = None
        self.data = None  # DatasetTokens of names
        self.run: SteppedRun | None = None
        self.views = []  # PositionView of every position of the shown row
        self.busy = False
        self.stop_requested = False

    def total_steps(self) -> int:
        return int_value("total-steps", 10, MAX_STEPS, 300)

    def steps_changed(self) -> None:
        """Before the first step the run takes the new length at once (same initial weights, same batches)."""
        if self.run is not None and self.run.steps_done == 0 and not self.busy:
            self.run = SteppedRun(lesson_config(self.total_steps()), self.backend, self.data.tokenizer,
                                  self.data.train, self.data.val)
            self.show_progress()
        self.show_schedule()

    def show_schedule(self) -> None:
        cfg = self.run.cfg if self.run else lesson_config(self.total_steps())
        step = self.run.steps_done if self.run else None
        set_html("lr-chart", lr_chart(lr_points(cfg), cfg, step))
        set_text("lr-text", schedule_text(cfg))
        set_text("adam-config", adam_text(cfg))

    async def boot(self) -> None:
        self.show_schedule()
        on("total-steps", "input", self.steps_changed)
        enable("total-steps")
        try:
            self.ex = await open_browser_device()
        except GpuUnavailable as e:
            set_text("gpu-adapter", "none")
            status("no-webgpu", f"Training in the page needs WebGPU: {e}")
            return
        set_text("gpu-adapter", adapter_name(self.ex.adapter_info))
        status("busy", "Fetching the names data set…")
        site_data = SiteData(site_url)
        await site_data.load_index()
        self.data = await site_data.dataset("names")
        cfg = lesson_config(self.total_steps())
        self.backend = GpuBackend(cfg.model_cfg(), cfg, self.ex)  # only `steps` differs between runs
        await self.reset()
        on("step-button", "click", self.step_once)
        on("train-button", "click", self.train)
        on("stop-button", "click", self.stop)
        on("reset-button", "click", self.reset)
        on("position", "input", self.show_position)
        on("tensor-choice", "change", self.show_tensors)
        enable("step-button", "train-button", "stop-button", "reset-button", "position", "tensor-choice")
        status("ready", "Ready: nano is initialised on the GPU.")

    # -- actions ----------------------------------------------------------------------------
    async def reset(self) -> None:
        if self.busy:
            return
        cfg = lesson_config(self.total_steps())
        self.run = SteppedRun(cfg, self.backend, self.data.tokenizer, self.data.train, self.data.val)
        await self.run.start()
        by_testid("total-steps").disabled = False
        await self.refresh()

    async def step_once(self) -> None:
        if self.busy or self.run.finished:
            return
        self.busy = True
        try:
            by_testid("total-steps").disabled = True  # the schedule is fixed once the run has begun
            await self.run.step()
            await self.refresh()
        finally:
            self.busy = False

    def stop(self) -> None:
        self.stop_requested = True

    async def train(self) -> None:
        if self.busy or self.run.finished:
            return
        self.busy, self.stop_requested = True, False
        by_testid("total-steps").disabled = True
        run = self.run
        try:
            while not run.finished and not self.stop_requested:
                await run.step(read_loss=False)
                if run.steps_done % LOSS_EVERY == 0:
                    await run.read_losses()
                    self.show_progress()
                    status("busy", f"Training: step {run.steps_done} of {run.cfg.steps}…")
                if run.steps_done % TENSORS_EVERY == 0:
                    await self.show_tensors()
                await asyncio.sleep(0)  # let the Stop click through
            await run.read_losses()
            status("busy", "Evaluating on the validation split…")
            await run.evaluate()
            await self.refresh()
            status("ready", f"Trained {run.steps_done} steps.")
        finally:
            self.busy = False

    # -- display ----------------------------------------------------------------------------
    async def refresh(self) -> None:
        """Everything that depends on the weights: predictions, heat maps, loss, schedule marker."""
        params = self.backend.layout.to_flat(await self.ex.read(self.backend.params))
        tiny = TinyGPT(self.run.cfg.model_cfg(), floats(params))
        x, y = self.run.next_window()
        self.views = position_views(tiny, x, y)
        slider = by_testid("position")
        if int(slider.max) == 0:  # first time: a position with some context
            slider.max = len(self.views) - 1
            slider.value = min(3, len(self.views) - 1)
        self.show_position()
        await self.show_tensors()
        self.show_progress()

    def show_position(self) -> None:
        if not self.views:
            return
        pos = int_value("position", 0, len(self.views) - 1, 0)
        batch = ("the next batch (the run is over)" if self.run.finished
                 else f"the batch step {self.run.steps_done + 1} trains on")
        set_text("position-label", f"position {pos} of row 0 of {batch}")
        set_html("position-view", position_html(self.views[pos], lambda t: token_label(self.data.tokenizer, t)))

    def show_progress(self) -> None:
        run = self.run
        V = run.cfg.vocab_size
        set_html("loss-chart", loss_chart_svg(run.losses, run.val_losses, run.cfg.steps, V))
        last = run.losses[-1][1] if run.losses else None
        loss_text = f"{last:.3f}" if last is not None else "–"
        val = f"; validation loss {run.val_losses[-1][1]:.3f}" if run.val_losses else ""
        set_text("train-progress", f"step {run.steps_done} of {run.cfg.steps}; training loss {loss_text} "
                                   f"(ln V = {uniform_loss(V):.3f}){val}")
        el = by_testid("train-progress")
        el.setAttribute("data-step", str(run.steps_done))
        if last is not None:
            el.setAttribute("data-loss", f"{last:.5f}")
        self.show_schedule()

    async def show_tensors(self) -> None:
        name = value_of("tensor-choice")
        if name not in HEATMAP_TENSORS:
            return
        offset, nbytes = self.backend.layout.byte_range(name)
        shape = self.backend.layout.slots[name].shape
        maps = []
        for title, buffer in (("weights", self.backend.params), ("gradients of the last step", self.backend.grads)):
            values = floats(await self.ex.read(buffer, nbytes, offset))
            maps.append(matrix_heat_map(tensor_rows(values, shape), f"{name} {title}"))
        set_html("tensor-maps", "".join(f"<figure>{m}</figure>" for m in maps))
        by_testid("tensor-maps").setAttribute("data-step", str(self.run.steps_done))


start(TrainingPage().boot)
