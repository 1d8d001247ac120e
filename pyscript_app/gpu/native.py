"""The native executor: the Executor interface over wgpu-py's API, on Dawn or wgpu-native.

Both `wgpudawn` (Dawn, the engine inside Chrome) and `wgpu` (wgpu-native; on CI machines it runs
on Mesa's lavapipe software Vulkan) expose the same wgpu-py API, so one class serves both.

    ex = open_device("auto")        # Dawn if it finds an adapter, else wgpu-native
    ex.engine, ex.adapter_info      # "dawn" | "wgpu-native", {vendor, device, backend_type, ...}
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable
from typing import Any

from .adapter_inputs import WANTED_FEATURES, choice_inputs
from .coop_rules import COOP_DAWN_TOGGLES, COOP_FEATURES, coop_config_listed
from .executor import STORAGE, Executor, GpuUnavailable, Target, as_view
from .registry import READ, READ_WRITE, UNIFORM

ENGINES = {"dawn": "wgpudawn", "wgpu-native": "wgpu"}  # engine name -> Python module
ADAPTER_INFO_KEYS = ("vendor", "architecture", "device", "description", "adapter_type", "backend_type")


class NativeExecutor(Executor):
    def __init__(self, wgpu: Any, adapter: Any, device: Any, engine: str, shader_dir=None, coop_ok: bool = False) -> None:
        super().__init__(shader_dir)
        self.wgpu, self.adapter, self.device, self.engine = wgpu, adapter, device, engine
        self.coop_ok = coop_ok
        self.adapter_info = native_adapter_info(adapter.info, engine, getattr(wgpu, "__version__", "?"))
        lim = device.limits
        self.max_binding_bytes = int(min(lim["max-storage-buffer-binding-size"], lim["max-buffer-size"]))
        # the rules' inputs, built as in the browser (gpu/adapter_inputs.py)
        self.max_workgroup_bytes, self.features, self.override_table, self.kernel_table = choice_inputs(
            self.adapter_info, lim["max-compute-workgroup-storage-size"], device.features)
        U = wgpu.BufferUsage
        self._usage = {STORAGE: U.STORAGE | U.COPY_SRC | U.COPY_DST, "uniform": U.UNIFORM | U.COPY_DST}
        T = wgpu.BufferBindingType
        self._binding_type = {READ: T.read_only_storage, READ_WRITE: T.storage, UNIFORM: T.uniform}
        self._staging: dict[int, list[Any]] = {}  # read_soon's mappable buffers, by size

    def _create_buffer(self, nbytes, usage, label):
        return self.device.create_buffer(size=nbytes, usage=self._usage[usage], label=label)

    def _write_buffer(self, handle, offset, data):
        self.device.queue.write_buffer(handle, offset, data)

    async def _read_buffer(self, handle, offset, nbytes):
        return bytes(self.device.queue.read_buffer(handle, offset, nbytes))

    def read_soon(self, target: Target) -> Awaitable[bytes]:
        """Copy target into a mappable staging buffer in the same submission as the work recorded so far;
        map it only when awaited, so work submitted in between runs on the GPU while the host records
        more. Staging buffers are pooled per size (a generation reads the same 8 bytes per token)."""
        v = as_view(target)
        pool = self._staging.setdefault(v.nbytes, [])
        U = self.wgpu.BufferUsage
        if pool:
            staging = pool.pop()
        else:
            staging = self.device.create_buffer(size=v.nbytes, usage=U.MAP_READ | U.COPY_DST, label="read_soon")
            self.stats["buffers"] += 1
        self._end_pass()
        if self._encoder is None:
            self._encoder = self._begin_encoder()
        self._copy(self._encoder, v.buffer.handle, v.offset, staging, 0, v.nbytes)
        self._recorded += 1
        self.submit()
        self.stats["reads"] += 1
        return _MappedRead(self, staging, pool)

    def _create_shader_module(self, code, label):
        return self.device.create_shader_module(code=code, label=label)

    def _create_bind_group_layout(self, accesses, label):
        stage = self.wgpu.ShaderStage.COMPUTE
        entries = [{"binding": i, "visibility": stage, "buffer": {"type": self._binding_type[a]}}
                   for i, a in enumerate(accesses)]
        return self.device.create_bind_group_layout(entries=entries, label=label)

    def _create_pipeline_layout(self, bind_group_layout, label):
        return self.device.create_pipeline_layout(bind_group_layouts=[bind_group_layout], label=label)

    def _create_pipeline(self, module, entry, layout, constants, label):
        stage = {"module": module, "entry_point": entry}
        if constants:
            stage["constants"] = dict(constants)
        return self.device.create_compute_pipeline(layout=layout, compute=stage, label=label)

    def _create_bind_group(self, layout, entries, label):
        return self.device.create_bind_group(layout=layout, label=label, entries=[
            {"binding": i, "resource": {"buffer": h, "offset": off, "size": size}}
            for i, (h, off, size) in enumerate(entries)])

    def _begin_encoder(self):
        return self.device.create_command_encoder()

    def _begin_pass(self, encoder):
        return encoder.begin_compute_pass()

    def _set_pipeline(self, compute_pass, pipeline):
        compute_pass.set_pipeline(pipeline)

    def _dispatch(self, compute_pass, bind_group, x, y, z):
        compute_pass.set_bind_group(0, bind_group)
        compute_pass.dispatch_workgroups(x, y, z)

    def _end_compute_pass(self, compute_pass):
        compute_pass.end()

    def _copy(self, encoder, src, src_offset, dst, dst_offset, nbytes):
        encoder.copy_buffer_to_buffer(src, src_offset, dst, dst_offset, nbytes)

    def _clear(self, encoder, handle, offset, nbytes):
        encoder.clear_buffer(handle, offset, nbytes)

    def _submit(self, encoder):
        self.device.queue.submit([encoder.finish()])


class _MappedRead:
    """read_soon's result: awaiting it maps the staging buffer (waiting for the copy's submission only as
    the engine tracks it), copies the bytes out and returns the buffer to its pool."""

    def __init__(self, ex: NativeExecutor, staging: Any, pool: list) -> None:
        self.ex, self.staging, self.pool = ex, staging, pool

    def __await__(self):
        return self._bytes().__await__()

    async def _bytes(self) -> bytes:
        staging, self.staging = self.staging, None
        if staging is None:
            raise RuntimeError("a read_soon result can be awaited once")
        staging.map_sync(self.ex.wgpu.MapMode.READ)
        try:
            return bytes(staging.read_mapped(0, staging.size))
        finally:
            staging.unmap()
            self.pool.append(staging)


def native_adapter_info(info, engine: str, version: str) -> dict[str, Any]:
    """adapter_info as the native executor keeps it: wgpu-py's adapter.info fields (ADAPTER_INFO_KEYS,
    the engine's own adapter_type among them), the engine and its version."""
    return {**{k: info.get(k) for k in ADAPTER_INFO_KEYS}, "engine": engine, "version": version}


def _request(engine: str, power_preference: str, dawn_toggles: tuple[str, ...] = (),
             mixed: bool = False) -> tuple[Any, Any, Any]:
    try:
        wgpu = importlib.import_module(ENGINES[engine])
    except ImportError as e:
        raise GpuUnavailable(f"{engine}: python package {ENGINES[engine]!r} is not installed ({e})") from None
    if mixed:
        _allow_coop(engine)
    try:
        adapter = wgpu.gpu.request_adapter_sync(power_preference=power_preference)
    except Exception as e:  # Dawn raises when it only has its Null backend
        raise GpuUnavailable(f"{engine}: no adapter ({str(e).strip().splitlines()[0]})") from None
    if adapter is None:
        raise GpuUnavailable(f"{engine}: no adapter")
    if mixed:
        _check_coop(engine, adapter)
    # Large presets need big storage bindings: ask for what the adapter offers (and for its workgroup
    # sizes, which probes of bigger workgroups need).
    lim = adapter.limits
    wanted = {k: lim[k] for k in ("max-storage-buffer-binding-size", "max-buffer-size",
                                  "max-compute-workgroup-storage-size", "max-storage-buffers-per-shader-stage",
                                  "max-compute-invocations-per-workgroup", "max-compute-workgroup-size-x")
              if k in lim}
    features = [f for f in (*WANTED_FEATURES, *(COOP_FEATURES if mixed else ())) if f in adapter.features]
    if engine == "dawn" and dawn_toggles:
        extras = importlib.import_module("wgpudawn.backends.dawn.extras")
        device = extras.request_device_sync(adapter, required_limits=wanted, required_features=features,
                                            enable_toggles=list(dawn_toggles))
    else:
        device = adapter.request_device_sync(required_limits=wanted, required_features=features)
    return wgpu, adapter, device


def _allow_coop(engine: str) -> None:
    """Dawn's toggles for subgroup matrices and f16 (coop_rules.COOP_DAWN_TOGGLES), set on its instance,
    which they must precede."""
    if engine != "dawn":
        raise GpuUnavailable(f"{engine}: mixed precision runs on Dawn only (its subgroup matrices)")
    extras = importlib.import_module("wgpudawn.backends.dawn.extras")
    try:
        extras.set_instance_extras(enable_toggles=list(COOP_DAWN_TOGGLES))
    except RuntimeError:
        raise GpuUnavailable("dawn: mixed precision must open the process's first Dawn device "
                             "(its instance toggles precede the instance)") from None


def _check_coop(engine: str, adapter: Any) -> None:
    """GpuUnavailable unless the adapter can run matmul_coop.wgsl."""
    missing = [f for f in COOP_FEATURES if f not in adapter.features]
    if missing:
        raise GpuUnavailable(f"{engine}: mixed precision needs the adapter features {', '.join(missing)}")
    extras = importlib.import_module("wgpudawn.backends.dawn.extras")
    configs = extras.get_adapter_properties(adapter).get("subgroup_matrix_configs") or []
    if not coop_config_listed(configs):
        raise GpuUnavailable(f"{engine}: mixed precision needs f16 16x16x16 subgroup matrices with f32 results "
                             f"at subgroup size 32; the adapter lists {len(configs)} other configurations")


def open_device(engine: str = "auto", power_preference: str = "high-performance", shader_dir=None,
                dawn_toggles: tuple[str, ...] = (), mixed: bool = False) -> NativeExecutor:
    """An executor on the first engine that finds an adapter: auto tries Dawn, then wgpu-native.
    dawn_toggles: Dawn device toggles to enable (wgpudawn's extras.all_toggles() lists them).
    mixed: open a device that runs matmul_coop.wgsl (mixed precision; Dawn only, and only as the
    process's first Dawn device), or raise GpuUnavailable saying what the adapter lacks.

    Raises GpuUnavailable (with every engine's reason) when none does."""
    if engine not in ("auto", *ENGINES):
        raise ValueError(f"unknown gpu engine {engine!r} (auto, dawn, wgpu-native)")
    order = ["dawn", "wgpu-native"] if engine == "auto" else [engine]
    if mixed:
        order = ["dawn"] if engine in ("auto", "dawn") else order
    reasons = []
    for name in order:
        try:
            wgpu, adapter, device = _request(name, power_preference, dawn_toggles, mixed)
        except GpuUnavailable as e:
            reasons.append(str(e))
            continue
        return NativeExecutor(wgpu, adapter, device, name, shader_dir, coop_ok=mixed)
    raise GpuUnavailable("; ".join(reasons))
