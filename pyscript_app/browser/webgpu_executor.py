"""The browser executor: the Executor interface over the JS WebGPU API, in a Pyodide worker.

    ex = await open_browser_device()      # GpuUnavailable with a readable message when no WebGPU
    ex.adapter_info                       # {"vendor", "architecture", "device", "description", ...}
    buf = ex.upload(data)                 # bytes-like in, never Python lists
    ex.dispatch("matmul_forward", [x, w, y], {"N": N, "K": K, "M": M, "accumulate": 0})
    out = await ex.read(y)                # bytes (mapAsync on a pooled staging buffer)

Shaders: registry.shader_source reads shaders/<file>; the page's PyScript config places
pyscript_app/ and shaders/ side by side in the worker's virtual FS, so the same lookup works here.
WebGPU validation errors are asynchronous in JS: they are collected from `uncapturederror` and
handed out by take_errors() (the parity runner checks them after each case).

A recorded step (Executor.run_plan / run_plan_read: the training step, the KV-cached decode step)
replays in JavaScript: the first run of a plan hands its pipelines, bind groups, buffers, commands and
write layout to step_replay.js (next to this file) once; every run after that is ONE call with ONE
Uint8Array holding the step's writes. Calling WebGPU through the FFI costs tens of microseconds per
call from Python, so a Python replay of a 60-dispatch step costs milliseconds of host time.
`js_replay = False` (or a step_replay.js that did not load: `replay_mode` says why) replays in Python.
read_soon submits a read-back's copy at once and resolves later (step_replay.js readSoon): the
playground's loss read-backs let the next step run on the GPU meanwhile.
"""

from __future__ import annotations

from array import array
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import js
from pyodide.code import run_js
from pyodide.ffi import create_proxy, to_js

from ..gpu.adapter_inputs import WANTED_FEATURES, choice_inputs
from ..gpu.browser_adapters import INFO_KEYS, WGPU_INFO_KEYS, browser_adapter_info
from ..gpu.executor import STORAGE, UNIFORM_USAGE, Executor, GpuBuffer, GpuUnavailable, Plan, Target, as_view
from ..gpu.registry import READ, READ_WRITE, UNIFORM
from .jsutil import is_nullish, js_bytes, js_get, js_object, py_bytes

# The storage limits large presets need: ask for whatever the adapter offers (as gpu/native.py does).
WANTED_LIMITS = ("maxStorageBufferBindingSize", "maxBufferSize", "maxComputeWorkgroupStorageSize",
                 "maxStorageBuffersPerShaderStage")
MAX_JS_PLANS = 8  # the JS StepPlans kept (a training step and a decode step per run shape)
NO_WEBGPU = ("This browser does not expose WebGPU (navigator.gpu is missing). Use a recent Chrome, Edge, "
             "Safari or Firefox with WebGPU enabled, on https:// or http://localhost.")
NO_ADAPTER = ("WebGPU is present but no GPU adapter is available (blocklisted driver, disabled hardware "
              "acceleration, or a headless browser without --enable-unsafe-webgpu).")


class BrowserExecutor(Executor):
    engine = "browser-webgpu"

    def __init__(self, adapter: Any, device: Any, shader_dir=None, step_replay: Any = None,
                 replay_mode: str = "python") -> None:
        """step_replay: the step_replay.js module (load_step_replay), None to replay in Python;
        replay_mode: what the page shows about it ("javascript", or why Python replays)."""
        super().__init__(shader_dir)
        self.step_replay, self.replay_mode = step_replay, replay_mode
        self.js_replay = step_replay is not None
        self._js_plans: dict[int, tuple] = {}  # id(plan) -> (plan, write layout, JS StepPlan, stats)
        self.adapter, self.device, self.queue = adapter, device, device.queue
        self.adapter_info = adapter_info(adapter)
        lim = device.limits
        self.max_binding_bytes = int(min(lim.maxStorageBufferBindingSize, lim.maxBufferSize))
        # the rules' inputs, built as natively (gpu/adapter_inputs.py)
        self.max_workgroup_bytes, self.features, self.override_table, self.kernel_table = choice_inputs(
            self.adapter_info, lim.maxComputeWorkgroupStorageSize,
            [f for f in WANTED_FEATURES if device.features.has(f)])
        U = js.GPUBufferUsage
        self._usage = {STORAGE: U.STORAGE | U.COPY_SRC | U.COPY_DST, UNIFORM_USAGE: U.UNIFORM | U.COPY_DST}
        self._staging_usage = U.MAP_READ | U.COPY_DST
        self._binding_type = {READ: "read-only-storage", READ_WRITE: "storage", UNIFORM: "uniform"}
        self._staging: dict[int, list[Any]] = {}  # size -> idle MAP_READ buffers
        self._errors: list[str] = []
        self.lost_reason: str | None = None
        self._on_error = create_proxy(self._record_error)  # kept alive as long as the device
        device.addEventListener("uncapturederror", self._on_error)
        device.lost.then(create_proxy(self._record_lost))

    # -- diagnostics ------------------------------------------------------------------------
    def _record_error(self, event: Any) -> None:
        self._errors.append(str(event.error.message))

    def _record_lost(self, info: Any) -> None:
        self.lost_reason = f"{info.reason}: {info.message}"

    def take_errors(self) -> list[str]:
        """WebGPU validation / out-of-memory errors reported since the last call (then cleared)."""
        errors, self._errors = self._errors, []
        return errors

    async def sync(self) -> None:
        """Submit what is recorded and wait until the GPU has finished all submitted work."""
        self.submit()
        await self.queue.onSubmittedWorkDone()

    # -- steps replayed in JavaScript ---------------------------------------------------------
    def run_plan(self, plan: Plan, writes: Sequence[tuple[Target, bytes]] = (),
                 src_offsets: Mapping[int, int] | None = None) -> None:
        entry = self._js_plan(plan, writes, src_offsets) if self.js_replay else None
        if entry is None:
            return super().run_plan(plan, writes, src_offsets)
        self.submit()
        packet = entry[4]
        packet.assign(_packet(writes, src_offsets))  # a memcpy into the plan's own Uint8Array
        entry[2].run(packet)

    async def run_plan_read(self, plan: Plan, writes: Sequence[tuple[Target, bytes]], read: Target,
                            src_offsets: Mapping[int, int] | None = None) -> bytes:
        entry = self._js_plan(plan, writes, src_offsets) if self.js_replay else None
        if entry is None:
            return await super().run_plan_read(plan, writes, read, src_offsets)
        self.submit()
        v = as_view(read)
        self.stats["reads"] += 1
        packet = entry[4]
        packet.assign(_packet(writes, src_offsets))  # read by runAndRead before it first awaits
        return py_bytes(await entry[2].runAndRead(packet, v.buffer.handle, v.offset, v.nbytes))

    def read_soon(self, target: GpuBuffer) -> Awaitable[bytes]:
        if self.step_replay is None:  # a snapshot now, read when awaited
            snapshot = self.alloc(target.nbytes, label="read_soon")
            self.copy(target, snapshot)
            self.submit()

            async def snapshot_bytes() -> bytes:
                try:
                    return await self.read(snapshot)
                finally:
                    self.release(snapshot)

            return snapshot_bytes()
        self.submit()
        self.stats["reads"] += 1
        promise = self.step_replay.readSoon(self.device, target.handle, 0, target.nbytes)  # submitted now

        async def data() -> bytes:
            return py_bytes(await promise)

        return data()

    def _js_plan(self, plan: Plan, writes: Sequence[tuple[Target, bytes]],
                 src_offsets: Mapping[int, int] | None) -> tuple:
        """(plan, write layout, its JS StepPlan, its stats, a Uint8Array of its packet's size): made on
        first use; the stats are counted. Copying the packet into a kept Uint8Array (assign) costs
        ~1 us in Pyodide; to_js of the bytes, a new typed array each step, ~30 us."""
        views = [as_view(t) for t, _ in writes]
        layout = (tuple((v.buffer.id, v.offset, v.nbytes, len(d)) for v, (_, d) in zip(views, writes)),
                  tuple(src_offsets or ()))
        entry = self._js_plans.get(id(plan))
        if entry is None or entry[0] is not plan or entry[1] != layout:
            size = sum(n for *_, n in layout[0]) + 4 * len(layout[1])
            entry = (plan, layout, self._make_js_plan(plan, views, writes, src_offsets), _plan_stats(plan),
                     js.Uint8Array.new(size))
            self._js_plans.pop(id(plan), None)
            while len(self._js_plans) >= MAX_JS_PLANS:  # plans of runs gone by (another model or batch)
                self._js_plans.pop(next(iter(self._js_plans)))
            self._js_plans[id(plan)] = entry
        st = self.stats
        for key, n in entry[3]:
            st[key] += n
        st["writes"] += len(writes)
        st["submits"] += 1
        return entry

    def _make_js_plan(self, plan: Plan, views: list, writes: Sequence[tuple[Target, bytes]],
                      src_offsets: Mapping[int, int] | None) -> Any:
        objects: dict[str, dict[int, int]] = {"pipeline": {}, "bind_group": {}, "buffer": {}}
        handles: dict[str, list[Any]] = {"pipeline": [], "bind_group": [], "buffer": []}

        def index(kind: str, obj: Any) -> int:
            i = objects[kind].get(id(obj))
            if i is None:
                i = objects[kind][id(obj)] = len(handles[kind])
                handles[kind].append(obj)
            return i

        ops = array("I")
        for item in plan.items:
            if item[0] == "dispatch":
                _, pl, bg, (x, y, z) = item
                ops.extend((0, index("pipeline", pl), index("bind_group", bg), x, y, z))
            elif item[0] == "clear":
                _, handle, offset, nbytes = item
                ops.extend((1, index("buffer", handle), offset, nbytes, 0, 0))
            else:
                _, src, src_offset, dst, dst_offset, nbytes = item
                ops.extend((2, index("buffer", src), src_offset, index("buffer", dst), dst_offset, nbytes))
        layout, at = array("I"), 0
        for v, (_, data) in zip(views, writes):
            n = len(memoryview(data).cast("B"))
            if n % 4 or n > v.nbytes:
                raise ValueError(f"write of {n} bytes into a {v.nbytes}-byte target")
            layout.extend((index("buffer", v.buffer.handle), v.offset, at, n))
            at += n
        dynamic = array("I")
        for i in src_offsets or ():
            if plan.items[i][0] != "copy":
                raise ValueError(f"plan item {i} is a {plan.items[i][0]}, not a copy")
            dynamic.extend((i, at))
            at += 4
        return self.step_replay.StepPlan.new(self.device, to_js(handles["pipeline"]), to_js(handles["bind_group"]),
                                         to_js(handles["buffer"]), js_bytes(ops), js_bytes(layout),
                                         js_bytes(dynamic))

    # -- primitives -------------------------------------------------------------------------
    def _create_buffer(self, nbytes, usage, label):
        return self.device.createBuffer(js_object({"size": nbytes, "usage": self._usage[usage], "label": label}))

    def _write_buffer(self, handle, offset, data):
        self.queue.writeBuffer(handle, offset, js_bytes(data))

    async def _read_buffer(self, handle, offset, nbytes):
        size = -(-nbytes // 4) * 4
        idle = self._staging.setdefault(size, [])
        staging = idle.pop() if idle else self.device.createBuffer(
            js_object({"size": size, "usage": self._staging_usage, "label": "read staging"}))
        encoder = self.device.createCommandEncoder()
        encoder.copyBufferToBuffer(handle, offset, staging, 0, size)
        self.queue.submit(to_js([encoder.finish()]))
        try:
            await staging.mapAsync(js.GPUMapMode.READ, 0, size)
            data = py_bytes(staging.getMappedRange(0, size))
            staging.unmap()
        except Exception:
            staging.destroy()
            raise
        idle.append(staging)
        return data[:nbytes]

    def _create_shader_module(self, code, label):
        return self.device.createShaderModule(js_object({"code": code, "label": label}))

    def _create_bind_group_layout(self, accesses, label):
        stage = js.GPUShaderStage.COMPUTE
        entries = [{"binding": i, "visibility": stage, "buffer": {"type": self._binding_type[a]}}
                   for i, a in enumerate(accesses)]
        return self.device.createBindGroupLayout(js_object({"entries": entries, "label": label}))

    def _create_pipeline_layout(self, bind_group_layout, label):
        return self.device.createPipelineLayout(js_object({"bindGroupLayouts": [bind_group_layout], "label": label}))

    def _create_pipeline(self, module, entry, layout, constants, label):
        return self.device.createComputePipeline(pipeline_descriptor(module, entry, layout, constants, label))

    async def _create_pipelines(self, requests):
        """All at once with createComputePipelineAsync: the browser may compile them on its worker
        threads, and the worker's Python goes on meanwhile (the playground starts this at boot, so
        the first step finds them compiled). On SwiftShader on 2 busy cores it is no faster than
        one by one (2026-11-22), but the compilation leaves the first step."""
        if not requests:
            return []
        promises = [self.device.createComputePipelineAsync(pipeline_descriptor(*r)) for r in requests]
        return list(await js.Promise.all(to_js(promises)))

    def _create_bind_group(self, layout, entries, label):
        return self.device.createBindGroup(js_object({"layout": layout, "label": label, "entries": [
            {"binding": i, "resource": {"buffer": h, "offset": off, "size": size}}
            for i, (h, off, size) in enumerate(entries)]}))

    def _begin_encoder(self):
        return self.device.createCommandEncoder()

    def _begin_pass(self, encoder):
        return encoder.beginComputePass()

    def _set_pipeline(self, compute_pass, pipeline):
        compute_pass.setPipeline(pipeline)

    def _dispatch(self, compute_pass, bind_group, x, y, z):
        compute_pass.setBindGroup(0, bind_group)
        compute_pass.dispatchWorkgroups(x, y, z)

    def _end_compute_pass(self, compute_pass):
        compute_pass.end()

    def _copy(self, encoder, src, src_offset, dst, dst_offset, nbytes):
        encoder.copyBufferToBuffer(src, src_offset, dst, dst_offset, nbytes)

    def _clear(self, encoder, handle, offset, nbytes):
        encoder.clearBuffer(handle, offset, nbytes)

    def _submit(self, encoder):
        self.queue.submit(to_js([encoder.finish()]))


def _packet(writes: Sequence[tuple[Target, bytes]], src_offsets: Mapping[int, int] | None) -> bytes:
    """The bytes of every write, then the dynamic copy offsets as u32 (step_replay.js reads them)."""
    data = b"".join(d for _, d in writes)
    return data + array("I", src_offsets.values()).tobytes() if src_offsets else data


def _plan_stats(plan: Plan) -> tuple[tuple[str, int], ...]:
    """What one replay of the plan adds to Executor.stats (as Executor.replay counts it)."""
    counts = {"dispatches": 0, "clears": 0, "copies": 0, "passes": 0}
    in_pass = False
    for item in plan.items:
        kind = item[0]
        if kind == "dispatch":
            counts["passes"] += not in_pass
            in_pass = True
        else:
            in_pass = False
        counts[{"dispatch": "dispatches", "clear": "clears", "copy": "copies"}[kind]] += 1
    return tuple(counts.items())


async def load_step_replay() -> tuple[Any, str]:
    """(the step_replay.js module, "javascript"), or (None, why) where it cannot load. The module
    sits next to this file in the worker's files; it is imported from a data: URL, so it loads the
    same way wherever Pyodide runs."""
    try:
        source = Path(__file__).with_name("step_replay.js").read_text(encoding="utf-8")
        module = await run_js("(url) => import(url)")("data:text/javascript;charset=utf-8," + quote(source))
        return module, "javascript"
    except Exception as e:  # a missing file, or a JS engine that refuses the import
        return None, f"python (step_replay.js did not load: {type(e).__name__}: {e})"


def pipeline_descriptor(module: Any, entry: str, layout: Any, constants: dict, label: str) -> Any:
    stage = {"module": module, "entryPoint": entry}
    if constants:
        stage["constants"] = dict(constants)
    return js_object({"layout": layout, "compute": stage, "label": label})


def adapter_info(adapter: Any) -> dict[str, Any]:
    """What the page shows about the adapter: vendor/architecture/device/description (and Firefox's
    wgpu fields), fallback flag, and the adapter type inferred from them (the choice rules key on it:
    gpu/browser_adapters.py)."""
    info = js_get(adapter, "info")
    fields = {k: str(js_get(info, k, "") or "") for k in (*INFO_KEYS, *WGPU_INFO_KEYS)}
    fallback = bool(js_get(info, "isFallbackAdapter", js_get(adapter, "isFallbackAdapter", False)))
    out = browser_adapter_info(fields, fallback)
    out["engine"] = BrowserExecutor.engine
    out["user_agent"] = str(js_get(js.navigator, "userAgent", ""))
    return out


def adapter_name(info: dict[str, Any]) -> str:
    """A one-line name for display, e.g. "google swiftshader" or "nvidia ampere (RTX 3060)"."""
    parts = [info.get("vendor") or "", info.get("architecture") or ""]
    name = " ".join(p for p in parts if p) or "unknown adapter"
    detail = info.get("description") or info.get("device")
    return f"{name} ({detail})" if detail else name


async def open_browser_device(power_preference: str = "high-performance", shader_dir=None,
                              allow_fallback: bool = False) -> BrowserExecutor:
    """A BrowserExecutor on the browser's WebGPU adapter; GpuUnavailable (readable message) if none.

    allow_fallback: when no adapter is offered, ask for the browser's software adapter (on the CPU,
    e.g. SwiftShader; adapter_info's "fallback" says so) before giving up."""
    gpu = js_get(js.navigator, "gpu")
    if gpu is None:
        raise GpuUnavailable(NO_WEBGPU)
    adapter = await gpu.requestAdapter(js_object({"powerPreference": power_preference}))
    if is_nullish(adapter) and allow_fallback:
        adapter = await gpu.requestAdapter(js_object({"forceFallbackAdapter": True}))
    if is_nullish(adapter):
        raise GpuUnavailable(NO_ADAPTER)
    limits = adapter.limits
    wanted = {name: getattr(limits, name) for name in WANTED_LIMITS if js_get(limits, name) is not None}
    features = [f for f in WANTED_FEATURES if adapter.features.has(f)]
    try:
        device = await adapter.requestDevice(js_object({"requiredLimits": wanted, "requiredFeatures": features,
                                                        "label": "tabgpt"}))
    except Exception as e:  # a JsException: the adapter refused the device
        raise GpuUnavailable(f"WebGPU adapter refused a device: {e}") from None
    return BrowserExecutor(adapter, device, shader_dir, *await load_step_replay())
