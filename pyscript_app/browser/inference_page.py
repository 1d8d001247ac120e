"""The inference page's Python (runs in a PyScript worker; DOM through pyscript.document).

Boot: open WebGPU with the adapter's own storage limits (a 124M GPT-2's wte is 154 MB, over WebGPU's
default 128 MiB binding), load browser/weight_upload.js, list the playground's OPFS checkpoints.
Load: inference/page_model.py reads the chosen files' headers; each GPT-2 tensor is then streamed from
its File into its own GPU buffer by weight_upload.js (File.slice -> arrayBuffer -> f32 ->
queue.writeBuffer, 64 MiB at a time), so the wasm heap never holds the weights; a model too large for
the device gets a line in the status. Our own family's checkpoints (small) are read whole.
Generate: inference/page_generate.py's loops; each token is written to the page as it arrives.
Everything worth testing lives in the pure modules (inference/page_*.py).
"""

from __future__ import annotations

import dataclasses
import json
import time

from pyscript import window

from pyscript_app.browser.dom import by_testid, site_url, start_page
from pyscript_app.browser.page_handlers import PageHandlers
from pyscript_app.browser.jsutil import fetch_text, py_bytes
from pyscript_app.browser.playground_opfs import OpfsFiles
from pyscript_app.browser.weight_upload import load_weight_upload
from pyscript_app.browser.webgpu_executor import adapter_name, open_browser_device
from pyscript_app.config import ConfigError
from pyscript_app.data.bpe import normalize
from pyscript_app.data.gpt2_tokenizer import GPT2Tokenizer
from pyscript_app.gpu.executor import GpuUnavailable
from pyscript_app.gpu.gpt2_model import Gpt2Decoder
from pyscript_app.gpu.gpt2_weights import UPLOAD_CHUNK_BYTES, Gpt2Weights, WeightDtypeError, WeightWriter, choose_weight_dtype
from pyscript_app.gpu.token_choice import Sampling, TokenChooser
from pyscript_app.gpu.trainer_backend import GpuBackend
from pyscript_app.inference.page_generate import done_text, generate_gpt2, generate_own, timing_text
from pyscript_app.inference.page_model import (Gpt2Source, ModelFileError, OwnSource, check_fits, describe,
                                               file_range, inspect)
from pyscript_app.inference.page_settings import InputError, parse_settings
from pyscript_app.playground.store import CheckpointStore
from pyscript_app.train.checkpoint import CheckpointError
from pyscript_app.train.run_state import describe_model, read_checkpoint

USER_ERRORS = (ModelFileError, CheckpointError, ConfigError, InputError)
SYNC_EVERY_BYTES = 256 << 20  # let the GPU process drain its upload staging this often
NEEDS_WEBGPU = ("Generation needs WebGPU, and this browser offers no adapter: {why} Chromium can use its "
                "software adapter (SwiftShader, on the CPU, slow) with --enable-unsafe-webgpu; or run "
                "`tabgpt sample --checkpoint DIR` on the command line.")


class JsFile:
    """A browser File as page_model's FileLike."""

    def __init__(self, file) -> None:
        self.file, self.name, self.size = file, str(file.name), int(file.size)

    async def read(self, start: int, end: int) -> bytes:
        return py_bytes(await self.file.slice(start, end).arrayBuffer())


class LoadedGpt2:
    def __init__(self, ex, weights: Gpt2Weights, tokenizer: GPT2Tokenizer, label: str) -> None:
        self.ex, self.weights, self.tokenizer, self.label = ex, weights, tokenizer, label
        self.cfg = weights.cfg
        self.decoder = Gpt2Decoder(ex, weights)
        self.chooser = TokenChooser(ex, "inference.choose")

    def release(self) -> None:
        self.decoder.release()
        for buf in (self.chooser.out, self.chooser.params):
            self.ex.release(buf)
        destroy(self.weights.buffers.values())


class LoadedOwn:
    def __init__(self, backend: GpuBackend, tokenizer, label: str) -> None:
        self.backend, self.tokenizer, self.label = backend, tokenizer, label

    def release(self) -> None:
        b = self.backend
        destroy([b.params, b.grads, b.m, b.v])  # the rest is small and pooled


def destroy(buffers) -> None:
    """Free GPU memory now (the executor's pool would keep a weight buffer for a model of that size)."""
    for buf in buffers:
        buf.handle.destroy()


class InferencePage(PageHandlers):
    def __init__(self) -> None:
        super().__init__()
        self.ex = None
        self.upload_js = None
        self.model: LoadedGpt2 | LoadedOwn | None = None
        self.store: CheckpointStore | None = None
        self.busy = False
        self.stop_requested = False

    # -- boot -------------------------------------------------------------------------------
    async def boot(self) -> None:
        self.set_status("Opening WebGPU…", "booting")
        try:
            self.ex = await open_browser_device(allow_fallback=True)
        except GpuUnavailable as e:
            by_testid("backend").textContent = "none: WebGPU is not available"
            self.set_status(NEEDS_WEBGPU.format(why=e), "no-webgpu")
            return
        info = self.ex.adapter_info
        kind = "software adapter (CPU, slow)" if info.get("fallback") or info.get("adapter_type") == "CPU" else "WebGPU"
        f16 = "shader-f16" in self.ex.features
        by_testid("backend").textContent = (f"{kind}: {adapter_name(info)}; largest buffer "
                                            f"{self.ex.max_binding_bytes / 2**20:,.0f} MiB; "
                                            f"{'shader-f16' if f16 else 'no shader-f16'}: auto stores GPT-2's weights in "
                                            f"{'f16' if f16 else 'f32'}")
        by_testid("backend").setAttribute("data-shader-f16", "yes" if f16 else "no")
        self.upload_js = await load_weight_upload()
        self.listen(by_testid("model-file"), "change", self.on_files)
        self.listen(by_testid("generate-button"), "click", self.on_generate)
        self.listen(by_testid("stop-button"), "click", self.on_stop)
        self.listen(by_testid("opfs-load-button"), "click", self.on_opfs_load)
        await self.list_opfs_runs()
        by_testid("model-file").disabled = False
        self.set_status("Ready: choose a model's files.", "ready")

    def set_busy(self, busy: bool, generating: bool = False) -> None:
        self.busy = busy
        by_testid("generate-button").disabled = busy or self.model is None
        by_testid("stop-button").disabled = not generating
        by_testid("model-file").disabled = busy
        by_testid("opfs-load-button").disabled = busy or by_testid("opfs-select").options.length == 0

    # -- loading ----------------------------------------------------------------------------
    async def on_files(self, event) -> None:
        files = event.target.files
        chosen = [files.item(i) for i in range(int(files.length))] if files is not None else []
        if self.busy or not chosen:
            return
        await self.load(lambda: self.load_files(chosen))

    async def on_opfs_load(self, _event) -> None:
        key = str(by_testid("opfs-select").value or "")
        if self.busy or not key or self.store is None:
            return

        async def load():
            blob = await self.store.load(key)
            if blob is None:
                raise CheckpointError("that checkpoint is no longer in this browser's storage")
            await self.load_own(blob, f"the playground's run {key}")

        await self.load(load)

    async def load(self, work) -> None:
        self.set_busy(True)
        if self.model is not None:  # one model on the GPU at a time
            self.model.release()
            self.model = None
        by_testid("model-info").textContent = "–"
        try:
            await work()
        except USER_ERRORS as e:
            self.set_status(str(e), "error")
        except ValueError as e:  # e.g. tokenizer files that do not parse
            self.set_status(f"The model could not be loaded: {e}", "error")
        finally:
            self.set_busy(False)

    async def load_files(self, chosen: list) -> None:
        files = [JsFile(f) for f in chosen]
        self.set_status(f"Reading {', '.join(f.name for f in files)}…", "loading")
        source = await inspect(files)
        if isinstance(source, OwnSource):
            file = next(f for f in files if f.name == source.file)
            await self.load_own(py_bytes(await file.file.arrayBuffer()), file.name)
        else:
            await self.load_gpt2(source, {f.name: f.file for f in files})

    async def load_gpt2(self, source: Gpt2Source, files: dict) -> None:
        ex, cfg = self.ex, source.cfg
        try:  # the Weights choice: auto = f16 where the device has shader-f16
            dtype = choose_weight_dtype(by_testid("weights-select").value or "auto", ex.features)
        except WeightDtypeError as e:
            raise ModelFileError(str(e)) from None
        check_fits(source, ex.max_binding_bytes, dtype)
        if source.tokenizer is None:
            self.set_status("Fetching GPT-2's tokenizer files from this site…", "loading")
            texts = (await fetch_text(site_url("assets/gpt2/encoder.json")),
                     await fetch_text(site_url("assets/gpt2/vocab.bpe")))
        else:
            texts = source.tokenizer
        tokenizer = GPT2Tokenizer.from_text(*texts)
        if tokenizer.vocab_size != cfg.vocab_size:
            raise ModelFileError(f"the tokenizer has {tokenizer.vocab_size:,} tokens, the model {cfg.vocab_size:,}")
        # Each tensor goes File -> (f32) -> its buffer, or a staging buffer that a GPU kernel packs into place
        # (gpu/gpt2_weights.py), a chunk of whole rows at a time.
        writer, shapes = WeightWriter(ex, cfg, dtype), dict(cfg.param_shapes())
        done, synced, total = 0, 0, source.gpu_bytes(dtype)
        try:
            for t in source.tensors:
                per_row = t.count // shapes[t.name][0] if len(shapes[t.name]) > 1 else t.count
                for row0, rows in writer.chunks(t.name):
                    buf, offset = writer.chunk_target(t.name, row0)
                    start, count = file_range(t, per_row, row0, rows)
                    await self.upload_js.uploadTensor(ex.device, files[t.file], start, count, t.dtype, buf.handle,
                                                      offset, UPLOAD_CHUNK_BYTES // 4)
                    writer.chunk_written(t.name, row0, rows)
                done += t.gpu_bytes(dtype)
                if done - synced >= SYNC_EVERY_BYTES or done == total:
                    await ex.queue.onSubmittedWorkDone()
                    synced = done
                    self.set_status(f"Uploading the weights: {100 * done // total} % of "
                                    f"{total / 2**20:,.0f} MiB…", "loading")
            errors = ex.take_errors()
            if errors:
                raise ModelFileError(f"the GPU could not hold this model: {errors[0][:200]}")
            weights = writer.finish()
        except Exception as e:
            destroy([*writer.buffers.values(), *([writer.staging] if writer.staging else [])])
            if hasattr(e, "js_error") or type(e).__name__ == "JsException":
                raise ModelFileError(f"reading the file failed: {e}") from None
            raise
        model = LoadedGpt2(ex, weights, tokenizer, describe(source, dtype))
        self.set_status("Compiling the GPU kernels…", "loading")
        warm = Sampling(temperature=0.0)  # one short greedy run: the first Generate then times generation only
        await generate_gpt2(model.decoder, model.chooser, [tokenizer.eot_id or 0], 2, warm)
        self.model = model
        self.loaded(model.label)

    async def load_own(self, blob: bytes, name: str) -> None:
        run = read_checkpoint(blob)
        train_cfg = dataclasses.replace(run.train_cfg, batch=1)  # training buffers sized for one row
        backend = GpuBackend(run.model_cfg, train_cfg, self.ex)
        await backend.load(run.arrays["params"], None, None, 0)
        label = (f"tabgpt's own model: {describe_model(run.model_cfg, run.train_cfg.model)}, "
                 f"{run.model_cfg.param_count:,} parameters, step {run.step} ({name})")
        self.model = LoadedOwn(backend, run.tokenizer, label)
        self.loaded(label)

    def loaded(self, label: str) -> None:
        by_testid("model-info").textContent = label
        self.set_status("Loaded: write a prompt and Generate.", "loaded")

    async def list_opfs_runs(self) -> None:
        files = await OpfsFiles.open()
        select = by_testid("opfs-select")
        if files is None:
            return
        self.store = CheckpointStore(files)
        runs = await self.store.index()
        options = []
        for key, s in sorted(runs.items(), key=lambda kv: str(kv[1].get("model", ""))):
            text = f"{s.get('model', '?')} on {s.get('dataset', '?')}, step {s.get('step', '?')}"
            options.append(f'<option value="{key}">{_escape(text)}</option>')
        select.innerHTML = "".join(options)
        by_testid("opfs-runs").hidden = not options
        by_testid("opfs-load-button").disabled = not options

    # -- generating -------------------------------------------------------------------------
    async def on_stop(self, _event) -> None:
        self.stop_requested = True
        self.set_status("Stopping after this token…", "stopping")

    async def on_generate(self, _event) -> None:
        if self.busy or self.model is None:
            return
        self.set_busy(True, generating=True)
        self.stop_requested = False
        try:
            await self.generate(parse_settings(self.read_form()))
        except USER_ERRORS as e:
            self.set_status(str(e), "error")
        except Exception:
            if self.ex is not None and self.ex.lost_reason:
                self.set_status(f"The GPU device was lost ({self.ex.lost_reason}); reload the page.", "lost")
            else:
                raise
        finally:
            self.set_busy(False)

    def read_form(self) -> dict:
        form = by_testid("inference-form")
        return json.loads(str(window.JSON.stringify(window.Object.fromEntries(window.FormData.new(form)))))

    async def generate(self, s) -> None:
        model, out = self.model, by_testid("output")
        first_el, per_el = by_testid("first-token-ms"), by_testid("ms-per-token")
        for el in (first_el, per_el):
            el.textContent = "–"
            el.removeAttribute("data-value")
        out.removeAttribute("data-token-ids")
        out.textContent = s.prompt
        new: list[int] = []
        if isinstance(model, LoadedGpt2):
            tok = model.tokenizer
            prompt = tok.encode(s.prompt) if s.prompt else [tok.eot_id if tok.eot_id is not None else 0]
            if len(prompt) >= model.cfg.n_positions:
                raise InputError(f"the prompt is {len(prompt)} tokens; the model's context is {model.cfg.n_positions}")
            head, decode = s.prompt, tok.decode
            stop = frozenset() if tok.eot_id is None else frozenset({tok.eot_id})
        else:
            tok = model.tokenizer
            context = [tok.bos] + tok.encode(normalize(s.prompt))
            head, decode = tok.decode(context[1:]), tok.decode
            out.textContent = head
        self.set_status("Generating…", "generating")
        stamps: list[float] = []
        t0 = time.perf_counter()

        def on_token(token: int) -> None:  # the final figures come from the Generation below
            new.append(token)
            out.textContent = head + decode(new)
            stamps.append(time.perf_counter())
            if len(stamps) == 1:
                first_el.textContent = f"{1000 * (stamps[0] - t0):,.0f} ms"
            else:
                per_el.textContent = f"{1000 * (stamps[-1] - stamps[0]) / (len(stamps) - 1):,.1f} ms/token"

        def should_stop() -> bool:
            return self.stop_requested

        if isinstance(model, LoadedGpt2):
            gen = await generate_gpt2(model.decoder, model.chooser, prompt, s.max_tokens, s.sampling,
                                      stop_ids=stop, on_token=on_token, should_stop=should_stop)
        else:
            gen = await generate_own(model.backend, context, s.max_tokens, s.temperature, s.top_k, s.seed,
                                     stop_ids=frozenset({tok.bos, tok.eos}), on_token=on_token,
                                     should_stop=should_stop)
        first, per = timing_text(gen)
        first_el.textContent, per_el.textContent = first, per
        if gen.first_token_ms is not None:
            first_el.setAttribute("data-value", f"{gen.first_token_ms:.3f}")
        if gen.ms_per_token is not None:
            per_el.setAttribute("data-value", f"{gen.ms_per_token:.3f}")
        out.setAttribute("data-token-ids", json.dumps(gen.ids))
        self.set_status(done_text(gen), "stopped" if gen.reason == "stopped" else "done")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_boot = start_page(lambda: InferencePage().boot(), "status", "The inference page")  # kept referenced
