"""GPU hosts: the kernel registry (registry.py), uniform packing (uniforms.py), the executor
interface (executor.py) and the native executor over wgpu-py (native.py, imported on demand so
this package imports in the browser and without wgpu installed)."""

from .executor import BufferView, Executor, GpuBuffer, GpuUnavailable, run_sync
from .registry import KERNELS, Kernel

__all__ = ["BufferView", "Executor", "GpuBuffer", "GpuUnavailable", "KERNELS", "Kernel", "run_sync", "open_device"]


def open_device(engine: str = "auto", **kw):
    """Native executor (see gpu/native.py); needs wgpu and/or wgpudawn installed."""
    from .native import open_device as _open

    return _open(engine, **kw)
