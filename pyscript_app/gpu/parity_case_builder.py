"""How a parity case is written down: CaseBuilder records a dispatch recipe on named buffers, its
inputs and the reference outputs; ParityCase builds it into index metadata plus one binary blob;
Bundle is what the site ships (index.json and the blobs). The cases themselves are in
gpu/parity_cases.py, the pure-Python runner that executes them in gpu/parity_runner.py.

numpy-only (site build time and native tests; never in the browser). A blob is the concatenation of
4-byte-aligned arrays; the index points into it with {"offset", "nbytes"} pairs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "tabgpt-parity/1"
INDEX_NAME = "index.json"


def _span(offset: int, nbytes: int) -> dict[str, int]:
    return {"offset": offset, "nbytes": nbytes}


def _plain(values: Mapping[str, Any] | None) -> dict[str, int | float]:
    """JSON-exact uniform/override values: Python ints for integers, Python floats otherwise."""
    out: dict[str, int | float] = {}
    for k, v in (values or {}).items():
        out[k] = int(v) if isinstance(v, (bool, int, np.integer)) else float(v)
    return out


@dataclass
class CaseBuilder:
    """Records one case: buffers, steps (dispatch / write / write_uniform / submit), expected outputs."""

    name: str
    blob: bytearray = field(default_factory=bytearray)
    buffers: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    _sizes: dict[str, int] = field(default_factory=dict)

    def _put(self, array: np.ndarray, dtype) -> dict[str, int]:
        data = np.ascontiguousarray(array, dtype=dtype).reshape(-1).astype(np.dtype(dtype).newbyteorder("<")).tobytes()
        offset = len(self.blob)
        self.blob += data
        return _span(offset, len(data))

    def _new_buffer(self, name: str, nbytes: int, entry: dict) -> str:
        if name in self._sizes:
            raise ValueError(f"{self.name}: buffer {name!r} defined twice")
        self._sizes[name] = max(4, nbytes)
        self.buffers.append({"name": name, "nbytes": max(4, nbytes), **entry})
        return name

    def input(self, name: str, array: np.ndarray, dtype=np.float32) -> str:
        """A storage buffer holding `array` as float32 (or uint32 for indices)."""
        data = np.asarray(array, dtype=dtype).reshape(-1)
        if data.size == 0:
            data = np.zeros(1, dtype)
        return self._new_buffer(name, data.nbytes, {"init": self._put(data, dtype)})

    def output(self, name: str, count: int, fill: float = float("nan")) -> str:
        """A storage buffer of `count` float32 pre-filled with `fill` (NaN: unwritten elements fail)."""
        return self._new_buffer(name, 4 * count, {"fill": "nan" if fill != fill else float(fill)})

    def uniform(self, name: str, kernel: str) -> str:
        """A caller-owned uniform buffer of `kernel` (for values that change between submits)."""
        self.buffers.append({"name": name, "uniform_of": kernel})
        self._sizes[name] = 0
        return name

    def dispatch(self, kernel: str, buffers: Sequence[str], params: Mapping[str, Any] | None = None, *,
                 uniform: str | None = None, shape: Mapping[str, Any] | None = None,
                 overrides: Mapping[str, Any] | None = None, flops: int = 0) -> None:
        """One dispatch; `bytes` (for GB/s) is estimated as the bound storage buffers' sizes."""
        unknown = [b for b in buffers if b not in self._sizes]
        if unknown:
            raise ValueError(f"{self.name}: unknown buffers {unknown}")
        step: dict[str, Any] = {"op": "dispatch", "kernel": kernel, "buffers": list(buffers),
                                "flops": int(flops), "bytes": sum(self._sizes[b] for b in buffers)}
        if uniform is None:
            step["params"] = _plain(params)
        else:
            step["uniform"], step["shape"] = uniform, _plain(shape)
        if overrides:
            step["overrides"] = _plain(overrides)
        self.steps.append(step)

    def write(self, buffer: str, array: np.ndarray, dtype=np.float32) -> None:
        self.steps.append({"op": "write", "buffer": buffer, "data": self._put(np.asarray(array).reshape(-1), dtype)})

    def write_uniform(self, buffer: str, kernel: str, values: Mapping[str, Any]) -> None:
        self.steps.append({"op": "write_uniform", "buffer": buffer, "kernel": kernel, "values": _plain(values)})

    def submit(self) -> None:
        self.steps.append({"op": "submit"})

    def expect_close(self, buffer: str, ref: np.ndarray, atol: float, rtol: float, what: str, offset: int = 0) -> None:
        """float32 elements [offset, offset + ref.size) of buffer ≈ ref (kept in float64)."""
        ref = np.asarray(ref, np.float64).reshape(-1)
        self.outputs.append({"what": what, "buffer": buffer, "offset": 4 * offset, "count": int(ref.size),
                             "compare": "close", "atol": float(atol), "rtol": float(rtol),
                             "expected": self._put(ref, np.float64)})

    def expect_bits(self, buffer: str, ref: np.ndarray, what: str, offset: int = 0) -> None:
        """The 32-bit patterns of the elements equal ref's exactly (ref float32 or uint32; NaN too)."""
        ref = np.ascontiguousarray(ref).reshape(-1)
        bits = ref.view(np.uint32) if ref.dtype == np.float32 else ref.astype(np.uint32)
        self.outputs.append({"what": what, "buffer": buffer, "offset": 4 * offset, "count": int(bits.size),
                             "compare": "bits", "expected": self._put(bits, np.uint32)})

    def kernels(self) -> list[str]:
        return sorted({s["kernel"] for s in self.steps if s["op"] == "dispatch"})


@dataclass(frozen=True)
class ParityCase:
    name: str
    kernels: tuple[str, ...]  # declared up front so a case can be skipped without building it
    make: Callable[[CaseBuilder], None]
    # workgroup memory its kernels declare, when above WebGPU's default 16 KiB (the GPU-only kernels):
    # a bundle for a device that allows less leaves the case out (parity_cases.build_bundle)
    workgroup_bytes: int = 0
    # the case runs on the GPU's matrix units (shaders/matmul_coop.wgsl): only a device opened for mixed
    # precision (Executor.coop_ok) gets it in its bundle
    needs_coop: bool = False

    def build(self) -> tuple[dict, bytes]:
        b = CaseBuilder(self.name)
        self.make(b)
        if b.kernels() != sorted(self.kernels):
            raise ValueError(f"case {self.name}: declares {sorted(self.kernels)} but dispatches {b.kernels()}")
        if not b.outputs:
            raise ValueError(f"case {self.name} checks nothing")
        meta = {"name": self.name, "kernels": sorted(self.kernels), "file": f"{self.name}.bin",
                "nbytes": len(b.blob), "buffers": b.buffers, "steps": b.steps, "outputs": b.outputs}
        return meta, bytes(b.blob)


def _rng(*seed: int) -> np.random.Generator:
    return np.random.default_rng(list(seed))


def _f64(*arrays: np.ndarray) -> list[np.ndarray]:
    return [a.astype(np.float64) for a in arrays]


@dataclass
class Bundle:
    index: dict
    blobs: dict[str, bytes]  # file name -> bytes

    def write(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name, data in self.blobs.items():
            (d / name).write_bytes(data)
        (d / INDEX_NAME).write_text(json.dumps(self.index, indent=1) + "\n", encoding="utf-8")
