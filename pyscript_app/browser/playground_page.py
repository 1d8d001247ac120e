"""The playground page's Python (runs in a PyScript worker; DOM through pyscript.document).

Boot: open WebGPU (or say why training cannot run), fetch the data index, wire the controls.
Train: parse the form (playground/settings.py), load the data (site files or pasted text, whose
BPE trains here), run a TrainingSession (playground/session.py) on the GpuBackend over the
browser's WebGPU. Each Trainer event is rendered as ONE innerHTML write (playground/view.py):
every DOM access from a worker is a round trip to the main thread. Checkpoints go to OPFS; Resume
appears when one exists for the settings on the form. All logic worth testing lives in the pure
modules; this file only moves values between them and the page.
"""

from __future__ import annotations

import asyncio
import json

import js
from pyodide.ffi import to_js
from pyscript import document, window

from pyscript_app.browser.dom import by_testid, site_url, start_page
from pyscript_app.browser.page_handlers import PageHandlers
from pyscript_app.browser.jsutil import js_bytes, py_bytes
from pyscript_app.browser.playground_data import SiteData
from pyscript_app.browser.playground_opfs import OpfsFiles
from pyscript_app.browser.webgpu_executor import open_browser_device
from pyscript_app.train.checkpoint import CheckpointError
from pyscript_app.config import ConfigError
from pyscript_app.gpu.executor import GpuUnavailable
from pyscript_app.gpu.trainer_backend import GpuBackend
from pyscript_app.playground.progress import Progress
from pyscript_app.playground.pipeline_plan import training_pipelines
from pyscript_app.playground.session import TrainingSession
from pyscript_app.playground.settings import InputError, parse_settings
from pyscript_app.playground.store import CheckpointStore, MemoryFiles
from pyscript_app.playground.textdata import check_text, prepare_text, text_data_id
from pyscript_app.playground.view import adapter_label, live_html, samples_html
from pyscript_app.train.run_state import read_checkpoint
from pyscript_app.train.sampler import sample_texts

# What a user can get wrong; each becomes one line in the status and changes nothing.
USER_ERRORS = (InputError, ConfigError, CheckpointError)
NEEDS_WEBGPU = ("Training needs WebGPU, and this browser offers no adapter: {why} There is no CPU "
                "fallback in the page (numpy does not run here); Chromium can use its software adapter "
                "(SwiftShader, on the CPU, slow) with --enable-unsafe-webgpu, or train with the CLI.")


def page_ms() -> int:
    """The page's clock (performance.now() of the main thread: the worker's starts later)."""
    return round(window.performance.now())


class PlaygroundPage(PageHandlers):
    def __init__(self) -> None:
        super().__init__()
        self.ex = None
        self.data = SiteData(site_url)
        self.store = CheckpointStore(MemoryFiles())
        self.session: TrainingSession | None = None
        self.backend: GpuBackend | None = None  # reused while the shape (model, B, T) stays the same
        self.model = None  # (backend, tokenizer) the Sample button draws from
        self.custom: dict[str, object] = {}  # text data id -> DatasetTokens (the BPE is trained once)
        self.busy = False
        self._warming: asyncio.Future | None = None  # the latest background pipeline compilation
        self._planned: set[tuple] = set()  # run shapes whose pipelines were asked for (on this device)

    # -- boot -------------------------------------------------------------------------------
    async def boot(self) -> None:
        status = by_testid("status")
        status.setAttribute("data-python-ms", str(page_ms()))
        self.set_status("Opening WebGPU…", "booting")
        device = asyncio.ensure_future(self.open_device())  # meanwhile: the data index and OPFS
        await self.data.load_index()
        files = await OpfsFiles.open()
        if files is not None:
            self.store = CheckpointStore(files)
        self.render_live(Progress(0))
        self.ex, unavailable = await device
        if unavailable is not None:
            by_testid("backend").textContent = "none: WebGPU is not available"
            self.set_status(NEEDS_WEBGPU.format(why=unavailable), "no-webgpu")
            return
        by_testid("backend").textContent = adapter_label(self.ex.adapter_info)
        self.prepare_in_background()  # compiling takes longest: start it first
        for testid, handler in (("train-button", self.on_train), ("stop-button", self.on_stop),
                                ("resume-button", self.on_resume), ("sample-button", self.on_sample)):
            self.listen(by_testid(testid), "click", handler)
        self.listen(by_testid("playground-form"), "change", self.on_form_change)
        by_testid("train-button").disabled = False
        by_testid("sample-button").disabled = True
        await self.refresh_resume()
        status.setAttribute("data-ready-ms", str(page_ms()))
        self.set_status("Ready: choose a data set and a model, then Train.", "ready")

    @staticmethod
    async def open_device():
        """(executor, None), or (None, GpuUnavailable): a task that raised before anyone awaited it
        would be reported as an unhandled exception in the console."""
        try:
            return await open_browser_device(allow_fallback=True), None
        except GpuUnavailable as e:
            return None, e

    # -- work done before Train is pressed ----------------------------------------------------
    def prepare_in_background(self) -> None:
        """Start what a Train with the settings now on the form will need: compiling its compute
        pipelines (seconds on a software adapter; the browser compiles them in parallel) and
        fetching its data set. Train then awaits the same work instead of starting it."""
        try:
            form = self.read_form()
            settings = parse_settings(form)
            cfg = settings.train_config()
        except USER_ERRORS:
            return  # the form is being edited: Train will say what is wrong
        self._warming = asyncio.ensure_future(self.quietly(self.compile_pipelines(cfg, self._warming)))
        if settings.dataset != "custom":
            self.spawn(self.quietly(self.data.dataset(settings.dataset)))

    @staticmethod
    async def quietly(coro) -> None:
        """Background preparation only saves time: if it fails, Train does the work and reports."""
        try:
            await coro
        except Exception:
            pass

    async def compile_pipelines(self, cfg, previous: asyncio.Future | None) -> None:
        """Compile the pipelines of a run with this config (those already compiled are skipped),
        after `previous` (an earlier compilation, which may hold the same pipelines) has ended."""
        if previous is not None:
            await asyncio.wait([previous])  # never raises: `previous` is quiet
        shape = (cfg.model_cfg(), cfg.batch, cfg.seq_len, getattr(cfg, "dropout", 0.0))  # what the plan depends on
        if self.ex is not None and not self.ex.lost_reason and shape not in self._planned:
            await self.ex.compile_pipelines(training_pipelines(cfg.model_cfg(), cfg))
            self._planned.add(shape)

    def render_live(self, progress: Progress) -> None:
        ex = self.ex
        replay = "" if ex is None else ex.replay_mode if ex.js_replay else "python"
        by_testid("live").innerHTML = live_html(progress, 1024 if self.model is None else self.model[1].vocab_size,
                                                replay)

    def read_form(self) -> dict:
        form = by_testid("playground-form")
        return json.loads(str(window.JSON.stringify(window.Object.fromEntries(window.FormData.new(form)))))

    def set_buttons(self, training: bool) -> None:
        by_testid("train-button").disabled = training
        by_testid("stop-button").disabled = not training
        by_testid("resume-button").disabled = training
        by_testid("sample-button").disabled = training or self.model is None

    # -- data -------------------------------------------------------------------------------
    async def dataset(self, settings, form: dict):
        if settings.dataset != "custom":
            return await self.data.dataset(settings.dataset)
        text = check_text(form.get("text", ""), "the pasted text")
        key = text_data_id(text)
        if key not in self.custom:
            self.set_status(f"Training the BPE tokenizer on your text ({len(text):,} characters)…", "tokenizing")
            await asyncio.sleep(0)  # let the status reach the page before the (synchronous) BPE
            self.custom[key] = prepare_text(text)
        return self.custom[key]

    def data_id(self, settings, form: dict) -> str | None:
        if settings.dataset != "custom":
            return self.data.data_id(settings.dataset)
        try:
            return text_data_id(check_text(form.get("text", ""), "the pasted text"))
        except InputError:
            return None

    async def gpu_backend(self, cfg) -> GpuBackend:
        if self.ex is None or self.ex.lost_reason:  # a lost device: open a new one (Resume after a loss)
            self.ex, self.backend = await open_browser_device(allow_fallback=True), None
            self._planned.clear()  # the new device has compiled nothing
        mc = cfg.model_cfg()
        b = self.backend
        if b is None or b.model_cfg != mc or (b.B, b.T) != (cfg.batch, cfg.seq_len):
            self.backend = GpuBackend(mc, cfg, self.ex)
        self.backend.train_cfg = cfg  # lr and steps come per step; the rest is the same for every run
        return self.backend

    # -- handlers ---------------------------------------------------------------------------
    async def on_form_change(self, event) -> None:
        target = event.target
        name = str(target.getAttribute("name") or target.getAttribute("data-testid") or "")
        if name == "dataset":
            by_testid("custom-data").hidden = str(target.value) != "custom"
        elif name == "text-file":
            await self.on_text_file(target)
        elif name == "checkpoint-file":
            await self.on_checkpoint_file(target)
            return
        if not self.busy:
            await self.refresh_resume()
            self.prepare_in_background()

    async def refresh_resume(self) -> None:
        """Show Resume when the store holds a checkpoint for the settings now on the form."""
        button = by_testid("resume-button")
        try:
            form = self.read_form()
            settings = parse_settings(form)
            data_id = self.data_id(settings, form)
            summary = await self.store.summary(settings.run_key(data_id)) if data_id else None
        except USER_ERRORS:
            summary = None
        button.hidden = summary is None
        if summary is not None:
            button.textContent = f"Resume from step {summary['step']}"
            button.setAttribute("data-step", str(summary["step"]))

    async def on_train(self, _event) -> None:
        await self.train(resume=False)

    async def on_resume(self, _event) -> None:
        await self.train(resume=True)

    async def on_stop(self, _event) -> None:
        if self.session is not None:
            self.session.stop()
            self.set_status("Stopping after this step…", "stopping")

    async def train(self, resume: bool) -> None:
        if self.busy:
            return
        self.busy = True
        self.set_buttons(training=True)
        try:
            await self._train(resume)
        except USER_ERRORS as e:
            self.set_status(str(e), "error")
        except GpuUnavailable as e:
            self.set_status(f"WebGPU is not usable: {e}", "lost")
        except Exception as e:
            if self.ex is not None and self.ex.lost_reason:
                self.set_status(f"The GPU device was lost ({self.ex.lost_reason}). Resume continues from "
                                "the last checkpoint on a new device.", "lost")
            else:
                self.set_status(f"Training stopped: {type(e).__name__}: {e}", "error")
                raise
        finally:
            self.busy = False
            self.session = None
            self.set_buttons(training=False)
            await self.refresh_resume()

    async def _train(self, resume: bool) -> None:
        form = self.read_form()
        settings = parse_settings(form)
        cfg = settings.train_config()
        status = by_testid("status")
        data = await self.dataset(settings, form)
        data.check_fits(cfg.seq_len)
        status.setAttribute("data-data-ms", str(page_ms()))  # marks for benchmarks/browser_playground.py
        key = settings.run_key(data.data_id)
        run = None
        if resume:
            blob = await self.store.load(key)
            if blob is None:
                raise InputError("no saved checkpoint for these settings")
            run = read_checkpoint(blob)
            run.check_model(cfg.model_cfg(), cfg.model)
            if run.tokenizer.sha256 != data.tokenizer.sha256:
                raise InputError("the saved checkpoint was trained with another tokenizer")
        backend = await self.gpu_backend(cfg)
        # steps replay in JavaScript (browser/step_replay.js); ?replay=python in the page's URL replays
        # them in Python, as every step did before (tests/test_browser_step_replay.py compares the two)
        self.ex.js_replay = self.ex.step_replay is not None and "replay=python" not in str(window.location.search)
        await self.compile_pipelines(cfg, self._warming)  # mostly done at boot or on a form change
        status.setAttribute("data-backend-ms", str(page_ms()))
        self.session = TrainingSession(settings, data, backend, self.store, key,
                                       meta={"backend": backend.describe()})
        self.model = None
        self.set_status(f"Resuming from step {run.step}…" if run else "Training…", "training")

        def emit(event: dict, progress: Progress) -> None:
            kind = event["type"]
            if kind == "samples":
                by_testid("samples").innerHTML = samples_html(
                    progress.samples, settings.prompt, settings.temperature, settings.top_k)
            elif kind != "init":
                if kind == "done":  # for the loss log (benchmarks/browser_playground.py reads it)
                    progress.timing["dispatches_per_step"] = backend.step_dispatches
                self.render_live(progress)

        def on_first_step() -> None:
            status.setAttribute("data-first-step-ms", str(page_ms()))

        progress = await self.session.run(emit, resume=run, on_first_step=on_first_step)
        self.model = (backend, data.tokenizer)
        await self.offer_download(await self.session.checkpoint_blob(), settings)
        verb = "Stopped" if progress.state == "stopped" else "Done"
        self.set_status(f"{verb} at step {progress.step} of {progress.total_steps} "
                        f"({progress.elapsed_s:.1f} s); checkpoint saved.", progress.state)

    async def offer_download(self, blob: bytes, settings) -> None:
        """Point the download link at the checkpoint (a blob: URL made here, in the worker)."""
        js_blob = js.Blob.new(to_js([js_bytes(blob)]), to_js({"type": "application/octet-stream"},
                                                            dict_converter=js.Object.fromEntries))
        link = by_testid("download-checkpoint")
        old = str(link.getAttribute("href") or "")
        if old.startswith("blob:"):
            js.URL.revokeObjectURL(old)
        link.setAttribute("href", str(js.URL.createObjectURL(js_blob)))
        link.setAttribute("download", f"tabgpt-{settings.dataset}-{settings.model}.tgpt")
        link.hidden = False

    async def on_sample(self, _event) -> None:
        if self.busy or self.model is None:
            return
        self.busy = True
        self.set_buttons(training=True)
        try:
            settings = parse_settings(self.read_form())
            backend, tok = self.model
            self.set_status("Sampling…", "sampling")
            texts = await sample_texts(backend, tok, prompt=settings.prompt, n=max(1, settings.samples),
                                       max_tokens=min(64, 2 * backend.model_cfg.block_size),
                                       temperature=settings.temperature, top_k=settings.top_k, seed=settings.seed)
            by_testid("samples").innerHTML = samples_html(texts, settings.prompt, settings.temperature, settings.top_k)
            self.set_status("Samples drawn.", "sampled")
        except USER_ERRORS as e:
            self.set_status(str(e), "error")
        finally:
            self.busy = False
            self.set_buttons(training=False)

    async def read_file(self, input_element) -> tuple[str, bytes] | None:
        files = input_element.files
        if files is None or int(files.length) == 0:
            return None
        file = files.item(0)
        return str(file.name), py_bytes(await file.arrayBuffer())

    async def on_text_file(self, input_element) -> None:
        got = await self.read_file(input_element)
        if got is None:
            return
        name, raw = got
        try:
            text = check_text(raw, name)
        except InputError as e:
            self.set_status(str(e), "error")
            return
        by_testid("custom-text").value = text
        by_testid("dataset-select").value = "custom"
        by_testid("custom-data").hidden = False
        self.set_status(f"Loaded {name} ({len(raw):,} bytes): Train builds its tokenizer.", "ready")

    async def on_checkpoint_file(self, input_element) -> None:
        """Load a .tgpt (the CLI's format): its model must be the selected one; then sample or resume."""
        if self.busy:
            return
        got = await self.read_file(input_element)
        if got is None:
            return
        name, blob = got
        try:
            run = read_checkpoint(blob)
            form = self.read_form()
            model = str(form.get("model", ""))
            settings = parse_settings(form)
            run.check_model(settings.train_config().model_cfg(), model)
            backend = await self.gpu_backend(run.train_cfg)
            await backend.load(run.arrays["params"], None, None, 0)
        except USER_ERRORS as e:
            self.set_status(f"{name}: {e}", "error")
            return
        self.model = (backend, run.tokenizer)
        by_testid("sample-button").disabled = False
        dataset = run.train_cfg.dataset
        if dataset in self.data.index and self.data.index[dataset]["tokenizer_sha256"] == run.tokenizer.sha256:
            # its run continues on this page: put its settings on the form and its checkpoint in the store
            cfg = run.train_cfg
            for field, value in (("dataset", dataset), ("steps", cfg.steps), ("batch", cfg.batch),
                                 ("context", cfg.block_size or ""), ("lr", cfg.lr), ("seed", cfg.seed)):
                document.querySelector(f'[name="{field}"]').value = str(value)
            settings = parse_settings(self.read_form())
            await self.store.save(settings.run_key(self.data.data_id(dataset)), blob,
                                  {"step": run.step, "steps": cfg.steps, "model": cfg.model, "dataset": dataset})
            await self.refresh_resume()
            more = " Resume continues its training."
        else:
            more = " (its data set is not on this page: sample from it, or train a new run)"
        self.set_status(f"Loaded {name}: step {run.step}, {run.model_cfg.param_count:,} parameters.{more}",
                        "loaded")


_boot = start_page(lambda: PlaygroundPage().boot(), "status", "The playground")  # kept referenced
