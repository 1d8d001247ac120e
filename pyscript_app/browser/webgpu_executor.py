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
"""

from __future__ import annotations

from typing import Any

import js
from pyodide.ffi import create_proxy, to_js

from ..gpu.browser_adapters import browser_adapter_type
from ..gpu.executor import STORAGE, UNIFORM_USAGE, Executor, GpuUnavailable
from ..gpu.registry import READ, READ_WRITE, UNIFORM, adapter_kernels, adapter_overrides
from .jsutil import is_nullish, js_bytes, js_get, js_object, py_bytes

# The storage limits large presets need: ask for whatever the adapter offers (as gpu/native.py does).
WANTED_LIMITS = ("maxStorageBufferBindingSize", "maxBufferSize", "maxComputeWorkgroupStorageSize",
                 "maxStorageBuffersPerShaderStage")
ADAPTER_INFO_KEYS = ("vendor", "architecture", "device", "description")
NO_WEBGPU = ("This browser does not expose WebGPU (navigator.gpu is missing). Use a recent Chrome, Edge, "
             "Safari or Firefox with WebGPU enabled, on https:// or http://localhost.")
NO_ADAPTER = ("WebGPU is present but no GPU adapter is available (blocklisted driver, disabled hardware "
              "acceleration, or a headless browser without --enable-unsafe-webgpu).")


class BrowserExecutor(Executor):
    engine = "browser-webgpu"

    def __init__(self, adapter: Any, device: Any, shader_dir=None) -> None:
        super().__init__(shader_dir)
        self.adapter, self.device, self.queue = adapter, device, device.queue
        self.adapter_info = adapter_info(adapter)
        self.override_table = adapter_overrides(self.adapter_info)  # {} except on adapters listed there
        self.kernel_table = adapter_kernels(self.adapter_info)
        lim = device.limits
        self.max_binding_bytes = int(min(lim.maxStorageBufferBindingSize, lim.maxBufferSize))
        self.max_workgroup_bytes = int(lim.maxComputeWorkgroupStorageSize)
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


def pipeline_descriptor(module: Any, entry: str, layout: Any, constants: dict, label: str) -> Any:
    stage = {"module": module, "entryPoint": entry}
    if constants:
        stage["constants"] = dict(constants)
    return js_object({"layout": layout, "compute": stage, "label": label})


def adapter_info(adapter: Any) -> dict[str, Any]:
    """What the page shows about the adapter: vendor/architecture/device/description, fallback flag,
    and the adapter type inferred from them (the choice rules key on it)."""
    info = js_get(adapter, "info")
    out = {k: str(js_get(info, k, "")) for k in ADAPTER_INFO_KEYS}
    out["fallback"] = bool(js_get(info, "isFallbackAdapter", js_get(adapter, "isFallbackAdapter", False)))
    # what native engines report and the browser does not: inferred (gpu/browser_adapters.py)
    out["adapter_type"] = browser_adapter_type(out)
    out["adapter_type_from"] = "vendor"
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
    try:
        device = await adapter.requestDevice(js_object({"requiredLimits": wanted, "label": "tabgpt"}))
    except Exception as e:  # a JsException: the adapter refused the device
        raise GpuUnavailable(f"WebGPU adapter refused a device: {e}") from None
    return BrowserExecutor(adapter, device, shader_dir)
