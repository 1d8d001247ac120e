"""Run the parity cases (gpu/parity_cases.py's bundle) on any Executor, then time the kernels.

Pure Python, no numpy: the browser runs it in Pyodide, the native tests on wgpu-py, with the same
data and the same comparisons. Got values are float32 bytes read back from the GPU (array('f'));
expected values are float64 (compare "close": |got - ref| <= atol + rtol * |ref|, NaN fails) or
uint32 bit patterns (compare "bits": exact).

    index = load_index(json_text)
    for meta in index["cases"]:
        result = await run_case(ex, meta, blob_of(meta))          # CaseResult (never raises)
    timings = await time_case(ex, meta, blob) if result.passed   # [KernelTiming], median of runs
    summary_text(results) -> "N passed, M failed"

Every coroutine here awaits only executor methods, so on the native host (whose reads never
suspend) `executor.run_sync(run_case(...))` drives it without an event loop.
"""

from __future__ import annotations

import math
import sys
import time
from array import array
from dataclasses import asdict, dataclass, field
from typing import Any

from .executor import STORAGE, Executor, GpuBuffer

FORMAT = "tabgpt-parity/1"  # = parity_cases.FORMAT (that module needs numpy, this one must not)
if sys.byteorder != "little":  # pragma: no cover - WebGPU hosts are little-endian
    raise ImportError("the parity bundle is little-endian")


class BundleError(ValueError):
    """The index or a blob does not match the format this runner reads."""


def load_index(index: dict) -> dict:
    """Check the parsed index.json's format tag and the fields the runner relies on."""
    if index.get("format") != FORMAT:
        raise BundleError(f"parity index format {index.get('format')!r}, expected {FORMAT!r}")
    for meta in index.get("cases", []):
        for key in ("name", "kernels", "file", "nbytes", "buffers", "steps", "outputs"):
            if key not in meta:
                raise BundleError(f"parity case {meta.get('name', '?')!r} lacks {key!r}")
    return index


@dataclass
class OutputCheck:
    what: str
    count: int
    bad: int  # elements outside the tolerance (or with other bits)
    max_abs_err: float  # over all elements (inf when a NaN appears where a number was expected)
    worst_index: int  # the element with the largest err / bound (-1 when none is bad)
    got: float | None = None
    expected: float | None = None

    @property
    def passed(self) -> bool:
        return self.bad == 0


@dataclass
class CaseResult:
    name: str
    kernels: list[str]
    checks: list[OutputCheck] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def max_abs_err(self) -> float:
        return max((c.max_abs_err for c in self.checks), default=float("nan"))

    def describe(self) -> str:
        """One line: PASS/FAIL, the case, its max error, and the first failure's detail."""
        head = f"{'PASS' if self.passed else 'FAIL'} {self.name}  max err {self.max_abs_err:.3g}"
        if self.error:
            return f"{head}  error: {self.error}"
        for c in self.checks:
            if not c.passed:
                return (f"{head}  {c.what}: {c.bad}/{c.count} off; worst [{c.worst_index}] "
                        f"got {c.got!r} expected {c.expected!r}")
        return head

    def to_json(self) -> dict:
        return {"name": self.name, "kernels": self.kernels, "passed": self.passed, "error": self.error,
                "max_abs_err": _finite_or_none(self.max_abs_err), "seconds": round(self.seconds, 4),
                "checks": [{**asdict(c), "max_abs_err": _finite_or_none(c.max_abs_err), "passed": c.passed}
                           for c in self.checks]}


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


# -- comparisons ----------------------------------------------------------------------------------
def compare_close(got: bytes, expected: bytes, atol: float, rtol: float, what: str = "") -> OutputCheck:
    """float32 `got` against float64 `expected`, elementwise |got - ref| <= atol + rtol * |ref|."""
    g, r = array("f"), array("d")
    g.frombytes(got)
    r.frombytes(expected)
    if len(g) != len(r):
        raise BundleError(f"{what}: {len(g)} values read, {len(r)} expected")
    bad, max_err, worst, worst_ratio = 0, 0.0, -1, -1.0
    for i in range(len(r)):
        ref = r[i]
        err = abs(g[i] - ref)
        bound = atol + rtol * abs(ref)
        if err <= bound:  # False for NaN
            if err > max_err:
                max_err = err
            continue
        bad += 1
        if not err <= max_err:  # NaN or a larger error
            max_err = err if err == err else math.inf
        ratio = err / bound if bound > 0 and err == err else math.inf
        if ratio > worst_ratio:
            worst, worst_ratio = i, ratio
    check = OutputCheck(what, len(r), bad, max_err, worst)
    if worst >= 0:
        check.got, check.expected = float(g[worst]), float(r[worst])
    return check


def compare_bits(got: bytes, expected: bytes, what: str = "") -> OutputCheck:
    """Exact equality of 32-bit patterns (bit-exact kernels, NaN markers included)."""
    g, r = array("I"), array("I")
    g.frombytes(got)
    r.frombytes(expected)
    if len(g) != len(r):
        raise BundleError(f"{what}: {len(g)} values read, {len(r)} expected")
    if g == r:
        return OutputCheck(what, len(r), 0, 0.0, -1)
    gf, rf = array("f", got), array("f", expected)
    bad = [i for i in range(len(r)) if g[i] != r[i]]
    errs = [abs(gf[i] - rf[i]) for i in bad]
    max_err = max((e if e == e else math.inf for e in errs), default=0.0)
    worst = bad[0]
    return OutputCheck(what, len(r), len(bad), max_err, worst, float(gf[worst]), float(rf[worst]))


# -- execution ------------------------------------------------------------------------------------
def _section(blob: bytes | memoryview, span: dict) -> memoryview:
    start, n = span["offset"], span["nbytes"]
    if start < 0 or start + n > len(blob):
        raise BundleError(f"blob span [{start}, {start + n}) outside {len(blob)} bytes")
    return memoryview(blob)[start:start + n]


def _fill_bytes(nbytes: int, fill: Any) -> bytes:
    value = math.nan if fill == "nan" else float(fill)
    return array("f", [value]).tobytes() * (nbytes // 4)


def prepare_buffers(ex: Executor, meta: dict, blob: bytes) -> dict[str, GpuBuffer]:
    """Allocate and initialise every buffer of the case (inputs from the blob, outputs filled)."""
    buffers: dict[str, GpuBuffer] = {}
    for spec in meta["buffers"]:
        name = spec["name"]
        if "uniform_of" in spec:
            buffers[name] = ex.uniform_buffer(spec["uniform_of"], name)
            continue
        buf = ex.alloc(spec["nbytes"], STORAGE, name)
        ex.write(buf, _section(blob, spec["init"]) if "init" in spec else _fill_bytes(buf.nbytes, spec["fill"]))
        buffers[name] = buf
    return buffers


def record_step(ex: Executor, step: dict, buffers: dict[str, GpuBuffer], blob: bytes) -> None:
    op = step["op"]
    if op == "dispatch":
        bound = [buffers[b] for b in step["buffers"]]
        if "uniform" in step:
            ex.dispatch(step["kernel"], bound, buffers[step["uniform"]], shape=step["shape"],
                        overrides=step.get("overrides"))
        else:
            ex.dispatch(step["kernel"], bound, step["params"], overrides=step.get("overrides"))
    elif op == "write":
        ex.write(buffers[step["buffer"]], _section(blob, step["data"]))
    elif op == "write_uniform":
        ex.write_uniform(buffers[step["buffer"]], step["kernel"], step["values"])
    elif op == "submit":
        ex.submit()
    else:
        raise BundleError(f"unknown step op {op!r}")


def _take_errors(ex: Executor) -> list[str]:
    take = getattr(ex, "take_errors", None)  # the browser host reports WebGPU errors asynchronously
    return list(take()) if take else []


def _release(ex: Executor, buffers: dict[str, GpuBuffer]) -> None:
    ex.submit()
    for buf in buffers.values():
        ex.release(buf)


async def run_case(ex: Executor, meta: dict, blob: bytes) -> CaseResult:
    """Execute the recipe, read every expected output back and compare. Errors become a FAIL."""
    result = CaseResult(meta["name"], list(meta["kernels"]))
    t0 = time.perf_counter()
    buffers: dict[str, GpuBuffer] = {}
    try:
        if len(blob) != meta["nbytes"]:
            raise BundleError(f"blob has {len(blob)} bytes, index says {meta['nbytes']}")
        _take_errors(ex)
        buffers = prepare_buffers(ex, meta, blob)
        for step in meta["steps"]:
            record_step(ex, step, buffers, blob)
        for out in meta["outputs"]:
            got = await ex.read(buffers[out["buffer"]], 4 * out["count"], out["offset"])
            expected = _section(blob, out["expected"])
            if out["compare"] == "bits":
                result.checks.append(compare_bits(got, expected, out["what"]))
            else:
                result.checks.append(compare_close(got, expected, out["atol"], out["rtol"], out["what"]))
        errors = _take_errors(ex)
        if errors:
            result.error = "WebGPU: " + " | ".join(errors)[:2000]
    except Exception as e:  # noqa: BLE001 - one broken case must not stop the gate
        result.error = f"{type(e).__name__}: {e}"
    finally:
        result.seconds = time.perf_counter() - t0
        try:
            _release(ex, buffers)
        except Exception:  # noqa: BLE001
            pass
    return result


# -- timing ---------------------------------------------------------------------------------------
@dataclass
class KernelTiming:
    kernel: str
    case: str
    median_ms: float  # per dispatch
    runs: list[float]  # per-dispatch ms of each run
    flops: int
    bytes: int

    @property
    def gflops(self) -> float | None:
        return self.flops / (self.median_ms * 1e6) if self.flops and self.median_ms > 0 else None

    @property
    def gbps(self) -> float | None:
        return self.bytes / (self.median_ms * 1e6) if self.bytes and self.median_ms > 0 else None

    def to_json(self) -> dict:
        return {"kernel": self.kernel, "case": self.case, "median_ms": round(self.median_ms, 4),
                "runs_ms": [round(r, 4) for r in self.runs], "flops": self.flops, "bytes": self.bytes,
                "gflops": _round(self.gflops), "gbps": _round(self.gbps)}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    if not n:
        raise ValueError("median of nothing")
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


async def _wait_idle(ex: Executor, probe: GpuBuffer) -> None:
    sync = getattr(ex, "sync", None)
    if sync is not None:
        await sync()
    else:
        await ex.read(probe, 4)  # a read submits and waits for everything before it


async def _time_dispatches(ex: Executor, step: dict, buffers: dict, blob: bytes, count: int, probe: GpuBuffer) -> float:
    """Wall ms of: record `count` replays of one dispatch, submit, wait until the GPU is idle."""
    t0 = time.perf_counter()
    for _ in range(count):
        record_step(ex, step, buffers, blob)
    await _wait_idle(ex, probe)
    return (time.perf_counter() - t0) * 1e3


async def time_case(ex: Executor, meta: dict, blob: bytes, runs: int = 3, target_ms: float = 20.0,
                    max_per_run: int = 16) -> list[KernelTiming]:
    """Per distinct kernel of the case: median over `runs` of (n dispatches, submit, wait) / n.

    The case's recipe runs once first (inputs in place, pipelines compiled). For each kernel, one
    timed dispatch picks n (about target_ms per run, at most max_per_run) so the fixed cost of a
    submit-and-wait is spread over n dispatches. Times include recording from Python: what a
    training step pays per dispatch."""
    buffers = prepare_buffers(ex, meta, blob)
    try:
        for step in meta["steps"]:
            record_step(ex, step, buffers, blob)
        probe = next(b for b in buffers.values() if b.usage == STORAGE)
        await _wait_idle(ex, probe)
        timings, seen = [], set()
        for step in meta["steps"]:
            if step["op"] != "dispatch" or step["kernel"] in seen:
                continue
            seen.add(step["kernel"])
            once = await _time_dispatches(ex, step, buffers, blob, 1, probe)
            per_run = max(1, min(max_per_run, int(target_ms / max(once, 1e-3))))
            per_dispatch = [await _time_dispatches(ex, step, buffers, blob, per_run, probe) / per_run
                            for _ in range(runs)]
            timings.append(KernelTiming(step["kernel"], meta["name"], median(per_dispatch), per_dispatch,
                                        step.get("flops", 0), step.get("bytes", 0)))
        return timings
    finally:
        _release(ex, buffers)


# -- reporting ------------------------------------------------------------------------------------
def summary_text(results: list[CaseResult]) -> str:
    passed = sum(r.passed for r in results)
    return f"{passed} passed, {len(results) - passed} failed"


def format_timing(t: KernelTiming) -> str:
    rate = []
    if t.gflops is not None:
        rate.append(f"{t.gflops:.3g} GFLOP/s")
    if t.gbps is not None:
        rate.append(f"{t.gbps:.3g} GB/s")
    return f"{t.kernel} ({t.case}): {t.median_ms:.3g} ms" + (f"  {', '.join(rate)}" if rate else "")


def report(adapter: dict, results: list[CaseResult], timings: list[KernelTiming], **extra: Any) -> dict:
    """The downloadable JSON: adapter, summary, every case with its checks, timings of passing kernels."""
    passing = {r.name for r in results if r.passed}
    return {"format": "tabgpt-bench/1", "adapter": adapter, "summary": summary_text(results),
            "passed": len(passing), "failed": len(results) - len(passing),
            "cases": [r.to_json() for r in results],
            "timings": [t.to_json() for t in timings if t.case in passing], **extra}
