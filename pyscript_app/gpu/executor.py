"""The executor interface both hosts implement: buffers, kernel dispatches, one submission per step.

Pure Python, no numpy (the browser host subclasses it over the JS WebGPU API through Pyodide's FFI;
the native host in gpu/native.py over wgpu-py). All bookkeeping lives here; a host implements only
the `_primitive` methods at the bottom.

Model of use (one training step):
    ex.write(tokens_buf, token_bytes)                  # queue writes: land before the next submit
    ex.dispatch("matmul_forward", [x, w, y], {"N": N, "K": K, "M": M, "accumulate": 0})
    ...                                                 # every dispatch is RECORDED into one shared
    ex.submit()                                         # compute pass; submit() sends the whole step
    loss = await ex.read(loss_buf)                      # async (browser buffers map asynchronously)

- Buffers come from a pool keyed by (size, usage): `alloc` reuses a `release`d buffer of the same
  key, so a run allocates once. Usage STORAGE buffers can be bound, written, read, copied, cleared.
- Pipelines are cached by (kernel, overrides); bind group layouts are explicit, built from the
  registry (never layout="auto"), so a binding an entry point ignores is still accepted.
- Uniform values given as a dict are packed (gpu/uniforms.py) and cached by content: replaying a
  step with the same shapes creates nothing. Values that change every step (AdamW's step count,
  the learning rate) must go into a buffer from `uniform_buffer(kernel)` updated with
  `write_uniform` — a dict would create one new buffer per distinct value.
- Bind groups are cached per (kernel, bound ranges, uniform buffer), so replaying costs encoding only.
- Ordering: dispatches in the shared pass run in record order, each seeing the previous one's
  writes. `write` goes to the queue at once, so it is visible to EVERY dispatch of the step being
  recorded (submit first if a write must happen between two dispatches). `copy` and `clear` end the
  shared pass (a new one starts at the next dispatch); `read` submits what is recorded first.
- `stats` counts created objects and recorded work (tests assert on it; the bench reports it).
- Plans: a step that records the same work every time (same kernels, buffers, uniform buffers and
  grids; only buffer CONTENTS change, through writes) is recorded once between `begin_plan()` and
  `end_plan()`, and later steps call `replay(plan)`: the host then makes only its primitive calls
  (set pipeline, dispatch, clear, copy) with no Python bookkeeping per dispatch. That bookkeeping
  (validation, uniform packing, cache keys) costs tens of microseconds per dispatch natively and
  several times more in Pyodide, which is more than the GPU time of a small model's dispatch.
  `run_plan(plan, writes)` is one whole step of a plan (its writes, the replay, the submit): the
  browser host makes it ONE call to JavaScript (browser/step_replay.js); `read_soon` starts a
  read-back that later submissions do not delay.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import registry, uniforms
from .registry import READ, READ_WRITE, UNIFORM, Kernel

STORAGE = "storage"  # STORAGE | COPY_SRC | COPY_DST
UNIFORM_USAGE = "uniform"  # UNIFORM | COPY_DST
STORAGE_OFFSET_ALIGNMENT = 256  # WebGPU minStorageBufferOffsetAlignment (default and maximum)


class GpuUnavailable(RuntimeError):
    """No WebGPU adapter could be found for the requested engine; the message says why."""


_ids = itertools.count(1)


@dataclass(eq=False)
class GpuBuffer:
    """A device buffer. `handle` is the host's object (wgpu-py GPUBuffer or a JS GPUBuffer)."""

    handle: Any
    nbytes: int
    usage: str
    label: str = ""
    id: int = 0

    def view(self, offset: int = 0, nbytes: int | None = None) -> "BufferView":
        """A byte range of this buffer to bind / read / write; offset must be 256-aligned to bind."""
        n = self.nbytes - offset if nbytes is None else nbytes
        if offset < 0 or n < 0 or offset + n > self.nbytes:
            raise ValueError(f"view [{offset}, {offset + n}) outside buffer {self.label!r} of {self.nbytes} bytes")
        return BufferView(self, offset, n)


@dataclass(frozen=True, eq=False)
class BufferView:
    buffer: GpuBuffer
    offset: int
    nbytes: int


Target = GpuBuffer | BufferView


def as_view(t: Target) -> BufferView:
    return t if isinstance(t, BufferView) else BufferView(t, 0, t.nbytes)


async def _ready(value):
    return value


def run_sync(coro):
    """Drive a coroutine that never really suspends (every native executor method) to its result."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("coroutine suspended: run it with asyncio (browser host)")


@dataclass(frozen=True)
class Plan:
    """Commands captured by begin_plan()/end_plan(): ("dispatch", pipeline, bind group, grid),
    ("clear", handle, offset, nbytes) or ("copy", src, src offset, dst, dst offset, nbytes)."""

    items: tuple

    @property
    def dispatches(self) -> int:
        return sum(1 for item in self.items if item[0] == "dispatch")


class Executor:
    """Host-independent executor; subclasses implement the primitives at the end."""

    engine = "abstract"

    def __init__(self, shader_dir=None) -> None:
        self.shader_dir = shader_dir
        self.adapter_info: dict[str, Any] = {}
        # kernel -> override values that replace the caller's on this adapter (registry.ADAPTER_OVERRIDES,
        # by architecture: empty on most): every host sets it once, at open (gpu/adapter_inputs.py)
        self.override_table: Mapping[str, Mapping[str, int | float]] = {}
        # kernel -> the kernel dispatched instead on this adapter (registry.ADAPTER_KERNELS: same bindings
        # and uniform; the caller's overrides are dropped); empty on most adapters
        self.kernel_table: Mapping[str, str] = {}
        # the largest buffer this device may bind as storage (hosts set the device's limit; WebGPU's default)
        self.max_binding_bytes = 128 << 20
        # the device's workgroup memory per workgroup (hosts set the device's limit; WebGPU's default)
        self.max_workgroup_bytes = 16384
        # WebGPU features the device was created with (hosts request "shader-f16" where the adapter has it:
        # gpu/gpt2_weights.choose_weight_dtype reads it)
        self.features: frozenset[str] = frozenset()
        # whether shaders/matmul_coop.wgsl can run (the device was opened for mixed precision and has
        # gpu/coop_rules.COOP_FEATURES with the f16 subgroup matrix configuration): gpu/native.py sets it
        self.coop_ok = False
        self.stats = dict.fromkeys(
            ("buffers", "shader_modules", "pipelines", "bind_groups", "uniform_buffers",
             "dispatches", "passes", "submits", "writes", "reads", "copies", "clears"), 0)
        self._free: dict[tuple[int, str], list[GpuBuffer]] = {}
        self._modules: dict[str, Any] = {}
        self._layouts: dict[str, tuple[Any, Any]] = {}  # kernel -> (bind group layout, pipeline layout)
        self._pipelines: dict[tuple, Any] = {}
        self._bind_groups: dict[tuple, Any] = {}
        self._uniform_cache: dict[tuple, GpuBuffer] = {}
        self._encoder: Any = None
        self._pass: Any = None
        self._pass_pipeline: Any = None
        self._recorded = 0  # commands recorded since the last submit
        self._plan: list[tuple] | None = None  # the plan being captured (begin_plan .. end_plan)

    # -- buffers ----------------------------------------------------------------------------
    def alloc(self, nbytes: int, usage: str = STORAGE, label: str = "") -> GpuBuffer:
        """A buffer of at least nbytes (rounded up to 4) from the pool, contents undefined."""
        if usage not in (STORAGE, UNIFORM_USAGE):
            raise ValueError(f"unknown usage {usage!r}")
        size = max(4, -(-int(nbytes) // 4) * 4)
        free = self._free.get((size, usage))
        if free:
            buf = free.pop()
            buf.label = label
            return buf
        self.stats["buffers"] += 1
        return GpuBuffer(self._create_buffer(size, usage, label), size, usage, label, next(_ids))

    def release(self, buf: GpuBuffer) -> None:
        """Return a buffer to the pool (the next alloc of the same size and usage reuses it)."""
        self._free.setdefault((buf.nbytes, buf.usage), []).append(buf)

    def upload(self, data, label: str = "") -> GpuBuffer:
        """alloc + write: a STORAGE buffer holding `data` (bytes-like, length a multiple of 4)."""
        buf = self.alloc(len(memoryview(data).cast("B")), STORAGE, label)
        self.write(buf, data)
        return buf

    def write(self, target: Target, data, offset: int = 0) -> None:
        """Queue a write of bytes-like `data` at byte `offset` inside target (multiples of 4)."""
        v = as_view(target)
        mv = memoryview(data).cast("B")
        if len(mv) % 4 or offset % 4:
            raise ValueError("write size and offset must be multiples of 4 bytes")
        if offset + len(mv) > v.nbytes:
            raise ValueError(f"write of {len(mv)} bytes at {offset} overflows {v.nbytes}-byte target")
        self.stats["writes"] += 1
        self._write_buffer(v.buffer.handle, v.offset + offset, mv)

    async def read(self, target: Target, nbytes: int | None = None, offset: int = 0) -> bytes:
        """Submit what is recorded, then return `nbytes` bytes of target from `offset`."""
        v = as_view(target)
        n = v.nbytes - offset if nbytes is None else nbytes
        if n % 4 or offset % 4 or offset + n > v.nbytes:
            raise ValueError(f"bad read range [{offset}, {offset + n}) of {v.nbytes} bytes")
        self.submit()
        self.stats["reads"] += 1
        return await self._read_buffer(v.buffer.handle, v.offset + offset, n)

    def read_soon(self, target: GpuBuffer) -> Awaitable[bytes]:
        """The bytes of target as they are after the work recorded and submitted so far: the copy is
        submitted now and work submitted later does not delay the result (the browser host). Here: a
        read at once (a native read never waits on an event loop)."""
        return _ready(run_sync(self.read(target)))

    def uniform_buffer(self, kernel: str, label: str = "") -> GpuBuffer:
        """A uniform buffer the caller owns and updates with write_uniform (per-step values)."""
        return self.alloc(uniforms.struct_size(registry.get(kernel).uniform), UNIFORM_USAGE, label or kernel)

    def write_uniform(self, buf: GpuBuffer, kernel: str, values: Mapping[str, Any]) -> None:
        self.write(buf, uniforms.pack(registry.get(kernel).uniform, values))

    # -- kernels ----------------------------------------------------------------------------
    def pipeline(self, kernel: str, overrides: Mapping[str, int | float] | None = None) -> Any:
        """The compute pipeline of a kernel with these override constants (cached; this adapter's
        override_table applies)."""
        kernel, overrides = self._substituted(kernel, overrides)
        k = registry.get(kernel)
        consts = k.resolve_overrides(self._tuned(kernel, overrides))
        key = (kernel, tuple(sorted(consts.items())))
        pl = self._pipelines.get(key)
        if pl is None:
            pl = self._create_pipeline(*self._pipeline_request(k, consts))
            self._pipelines[key] = pl
            self.stats["pipelines"] += 1
        return pl

    async def compile_pipelines(self, wanted: Iterable[tuple[str, Mapping[str, int | float] | None]]) -> int:
        """Create the pipelines of `wanted` ((kernel, overrides) pairs) ahead of their first dispatch,
        all at once where the host can compile them in parallel (the browser's
        createComputePipelineAsync; natively one after the other). Returns how many were new.
        Await it before dispatching those kernels: a dispatch meanwhile would compile its own."""
        requests: dict[tuple, tuple] = {}
        for kernel, overrides in wanted:
            kernel, overrides = self._substituted(kernel, overrides)
            k = registry.get(kernel)
            consts = k.resolve_overrides(self._tuned(kernel, overrides))
            key = (kernel, tuple(sorted(consts.items())))
            if key not in self._pipelines and key not in requests:
                requests[key] = self._pipeline_request(k, consts)
        made = await self._create_pipelines(list(requests.values()))
        for key, pl in zip(requests, made):
            if key not in self._pipelines:
                self._pipelines[key] = pl
                self.stats["pipelines"] += 1
        return len(requests)

    def _substituted(self, kernel: str, overrides: Mapping[str, int | float] | None
                     ) -> tuple[str, Mapping[str, int | float] | None]:
        """(kernel, overrides) after this adapter's kernel_table: a replaced kernel runs with its own defaults."""
        other = self.kernel_table.get(kernel)
        return (other, None) if other else (kernel, overrides)

    def _tuned(self, kernel: str, overrides: Mapping[str, int | float] | None) -> Mapping[str, int | float] | None:
        """The caller's overrides with this adapter's replacements (override_table) applied."""
        forced = self.override_table.get(kernel)
        return {**(overrides or {}), **forced} if forced else overrides

    def _pipeline_request(self, k: Kernel, consts: dict) -> tuple:
        """The arguments of _create_pipeline for kernel k with resolved overrides (module made once)."""
        module = self._modules.get(k.file)
        if module is None:
            module = self._create_shader_module(registry.shader_source(k.file, self.shader_dir), k.file)
            self._modules[k.file] = module
            self.stats["shader_modules"] += 1
        _, pipeline_layout = self._layout(k)
        return module, k.entry, pipeline_layout, consts, k.name

    def dispatch(
        self,
        kernel: str,
        buffers: Sequence[Target],
        params: Mapping[str, Any] | GpuBuffer,
        *,
        overrides: Mapping[str, int | float] | None = None,
        shape: Mapping[str, Any] | None = None,
    ) -> None:
        """Record one dispatch of `kernel` into the shared compute pass.

        buffers: the storage bindings in registry order (GpuBuffer or 256-aligned BufferView).
        params:  the uniform values (dict, packed and cached by content) or a buffer from
                 uniform_buffer(); in the latter case `shape` gives the values the grid needs.
        """
        kernel, overrides = self._substituted(kernel, overrides)
        k = registry.get(kernel)
        overrides = self._tuned(kernel, overrides)
        if len(buffers) != len(k.storage_bindings):
            names = [n for n, _ in k.storage_bindings]
            raise ValueError(f"{kernel} takes {len(names)} buffers {names}, got {len(buffers)}")
        views = [as_view(b) for b in buffers]
        for (name, _), v in zip(k.storage_bindings, views):
            if v.offset % STORAGE_OFFSET_ALIGNMENT or v.nbytes % 4 or v.nbytes == 0:
                raise ValueError(f"{kernel}: binding {name!r} range offset {v.offset} size {v.nbytes} "
                                 f"(offset must be a multiple of {STORAGE_OFFSET_ALIGNMENT}, size of 4, > 0)")
            if v.buffer.usage != STORAGE:
                raise ValueError(f"{kernel}: binding {name!r} is not a storage buffer")
        if isinstance(params, GpuBuffer):
            ubuf, grid_values = params, shape
            if grid_values is None:
                raise ValueError(f"{kernel}: pass shape= (the values the grid needs) with a uniform buffer")
        else:
            ubuf, grid_values = self._cached_uniform(k, params), params
        groups = k.workgroups(grid_values, overrides)
        pl = self.pipeline(kernel, overrides)
        bg = self._bind_group(k, views, ubuf)
        if self._pass is None:
            if self._encoder is None:
                self._encoder = self._begin_encoder()
            self._pass = self._begin_pass(self._encoder)
            self._pass_pipeline = None
            self.stats["passes"] += 1
        if self._pass_pipeline is not pl:
            self._set_pipeline(self._pass, pl)
            self._pass_pipeline = pl
        self._dispatch(self._pass, bg, *groups)
        self._recorded += 1
        self.stats["dispatches"] += 1
        if self._plan is not None:
            self._plan.append(("dispatch", pl, bg, tuple(groups)))

    def copy(self, src: Target, dst: Target, nbytes: int | None = None) -> None:
        """Record a buffer-to-buffer copy of nbytes (default: all of src) after the recorded work."""
        s, d = as_view(src), as_view(dst)
        n = s.nbytes if nbytes is None else nbytes
        if n % 4 or n > s.nbytes or n > d.nbytes:
            raise ValueError(f"bad copy of {n} bytes from {s.nbytes} to {d.nbytes}")
        self._end_pass()
        if self._encoder is None:
            self._encoder = self._begin_encoder()
        self._copy(self._encoder, s.buffer.handle, s.offset, d.buffer.handle, d.offset, n)
        self._recorded += 1
        self.stats["copies"] += 1
        if self._plan is not None:
            self._plan.append(("copy", s.buffer.handle, s.offset, d.buffer.handle, d.offset, n))

    def clear(self, target: Target) -> None:
        """Record zero-filling target (a whole buffer or a view) after the recorded work."""
        v = as_view(target)
        self._end_pass()
        if self._encoder is None:
            self._encoder = self._begin_encoder()
        self._clear(self._encoder, v.buffer.handle, v.offset, v.nbytes)
        self._recorded += 1
        self.stats["clears"] += 1
        if self._plan is not None:
            self._plan.append(("clear", v.buffer.handle, v.offset, v.nbytes))

    def submit(self) -> None:
        """Send everything recorded since the last submit as ONE command buffer (no-op if empty)."""
        self._end_pass()
        if self._encoder is None:
            return
        encoder, self._encoder = self._encoder, None
        if self._recorded:
            self._submit(encoder)
            self.stats["submits"] += 1
        self._recorded = 0

    # -- plans ------------------------------------------------------------------------------
    def begin_plan(self) -> None:
        """Start capturing: the dispatches, copies and clears recorded until end_plan() (they are
        recorded as usual too) become a Plan that replay() records again, cheaply."""
        if self._plan is not None:
            raise RuntimeError("a plan is already being captured")
        self._plan = []

    def end_plan(self) -> "Plan":
        if self._plan is None:
            raise RuntimeError("end_plan() without begin_plan()")
        plan, self._plan = Plan(tuple(self._plan)), None
        return plan

    def replay(self, plan: "Plan") -> None:
        """Record the plan's commands again, in order, into the current submission. The buffers and
        uniform buffers it binds must still be alive (not released); their contents may differ."""
        if self._plan is not None:
            raise RuntimeError("replay() while capturing a plan")
        st = self.stats
        for item in plan.items:
            kind = item[0]
            if kind == "dispatch":
                _, pl, bg, (x, y, z) = item
                if self._pass is None:
                    if self._encoder is None:
                        self._encoder = self._begin_encoder()
                    self._pass = self._begin_pass(self._encoder)
                    self._pass_pipeline = None
                    st["passes"] += 1
                if self._pass_pipeline is not pl:
                    self._set_pipeline(self._pass, pl)
                    self._pass_pipeline = pl
                self._dispatch(self._pass, bg, x, y, z)
                st["dispatches"] += 1
            else:
                self._end_pass()
                if self._encoder is None:
                    self._encoder = self._begin_encoder()
                if kind == "clear":
                    self._clear(self._encoder, *item[1:])
                    st["clears"] += 1
                else:
                    self._copy(self._encoder, *item[1:])
                    st["copies"] += 1
            self._recorded += 1

    def run_plan(self, plan: "Plan", writes: Sequence[tuple[Target, bytes]] = (),
                 src_offsets: Mapping[int, int] | None = None) -> None:
        """One step of a plan: submit what is recorded, queue `writes` ((target, bytes) pairs), replay
        the plan (a copy at plan item i reading from src_offsets[i] instead of its recorded source
        offset) and submit. A host may do all of it in one call (the browser: step_replay.js); this is
        the Python replay every host can fall back to."""
        self.submit()
        for target, data in writes:
            self.write(target, data)
        if src_offsets:
            items = list(plan.items)
            for i, off in src_offsets.items():
                items[i] = (items[i][0], items[i][1], off, *items[i][3:])
            plan = Plan(tuple(items))
        self.replay(plan)
        self.submit()

    async def run_plan_read(self, plan: "Plan", writes: Sequence[tuple[Target, bytes]], read: Target,
                            src_offsets: Mapping[int, int] | None = None) -> bytes:
        """run_plan, then the bytes of `read` once the step has run (the decode step's logits)."""
        self.run_plan(plan, writes, src_offsets)
        return await self.read(read)

    # -- caches -----------------------------------------------------------------------------
    def _layout(self, k: Kernel) -> tuple[Any, Any]:
        lay = self._layouts.get(k.name)
        if lay is None:
            bgl = self._create_bind_group_layout([access for _, access in k.bindings], k.name)
            lay = (bgl, self._create_pipeline_layout(bgl, k.name))
            self._layouts[k.name] = lay
        return lay

    def _cached_uniform(self, k: Kernel, values: Mapping[str, Any]) -> GpuBuffer:
        data = uniforms.pack(k.uniform, values)
        key = (k.uniform, data)
        buf = self._uniform_cache.get(key)
        if buf is None:
            buf = self.alloc(len(data), UNIFORM_USAGE, f"{k.file} params")
            self.write(buf, data)
            self._uniform_cache[key] = buf
            self.stats["uniform_buffers"] += 1
        return buf

    def _bind_group(self, k: Kernel, views: list[BufferView], ubuf: GpuBuffer) -> Any:
        key = (k.name, tuple((v.buffer.id, v.offset, v.nbytes) for v in views), ubuf.id)
        bg = self._bind_groups.get(key)
        if bg is None:
            bgl, _ = self._layout(k)
            entries = [(v.buffer.handle, v.offset, v.nbytes) for v in views] + [(ubuf.handle, 0, ubuf.nbytes)]
            bg = self._create_bind_group(bgl, entries, k.name)
            self._bind_groups[key] = bg
            self.stats["bind_groups"] += 1
        return bg

    def _end_pass(self) -> None:
        if self._pass is not None:
            self._end_compute_pass(self._pass)
            self._pass = None
            self._pass_pipeline = None

    # -- primitives a host implements ---------------------------------------------------------
    # accesses are registry.READ / READ_WRITE / UNIFORM; entries are (handle, offset, size) in
    # binding order; usage is STORAGE or UNIFORM_USAGE.
    def _create_buffer(self, nbytes: int, usage: str, label: str) -> Any:
        raise NotImplementedError

    def _write_buffer(self, handle: Any, offset: int, data: memoryview) -> None:
        raise NotImplementedError

    async def _read_buffer(self, handle: Any, offset: int, nbytes: int) -> bytes:
        raise NotImplementedError

    def _create_shader_module(self, code: str, label: str) -> Any:
        raise NotImplementedError

    def _create_bind_group_layout(self, accesses: list[str], label: str) -> Any:
        raise NotImplementedError

    def _create_pipeline_layout(self, bind_group_layout: Any, label: str) -> Any:
        raise NotImplementedError

    def _create_pipeline(self, module: Any, entry: str, layout: Any, constants: dict, label: str) -> Any:
        raise NotImplementedError

    def _create_bind_group(self, layout: Any, entries: list[tuple[Any, int, int]], label: str) -> Any:
        raise NotImplementedError

    async def _create_pipelines(self, requests: list[tuple]) -> list[Any]:
        """Pipelines for _create_pipeline argument tuples; a host that compiles asynchronously
        overrides this to compile them all at once."""
        return [self._create_pipeline(*request) for request in requests]

    def _begin_encoder(self) -> Any:
        raise NotImplementedError

    def _begin_pass(self, encoder: Any) -> Any:
        raise NotImplementedError

    def _set_pipeline(self, compute_pass: Any, pipeline: Any) -> None:
        raise NotImplementedError

    def _dispatch(self, compute_pass: Any, bind_group: Any, x: int, y: int, z: int) -> None:
        raise NotImplementedError

    def _end_compute_pass(self, compute_pass: Any) -> None:
        raise NotImplementedError

    def _copy(self, encoder: Any, src: Any, src_offset: int, dst: Any, dst_offset: int, nbytes: int) -> None:
        raise NotImplementedError

    def _clear(self, encoder: Any, handle: Any, offset: int, nbytes: int) -> None:
        raise NotImplementedError

    def _submit(self, encoder: Any) -> None:
        raise NotImplementedError


__all__ = [
    "Executor", "GpuBuffer", "BufferView", "GpuUnavailable", "STORAGE", "UNIFORM_USAGE",
    "STORAGE_OFFSET_ALIGNMENT", "as_view", "run_sync", "READ", "READ_WRITE", "UNIFORM",
]
