"""`tabgpt bench --backend gpu` (native): correctness gate first, then kernel, GEMM and training-step timings.

Order and rules:
  1. Gate: every parity case (gpu/parity_cases.py, the same cases the browser's bench page runs)
     through gpu/parity_runner.py on this adapter. Timings are only reported for kernels that passed,
     and nothing else is timed when any case fails.
  2. Kernel timings of the passing cases (median per dispatch, GFLOP/s or GB/s).
  3. GEMM y = x @ w at the model's own shapes (and at --gemm N for N x N x N), beside
     torch.matmul on the same device (CUDA when torch sees one, else CPU) with TF32 off.
  4. Training step (forward + backward + clip + AdamW, batch 8, full context) per preset: median
     milliseconds per step over --repeats steps submitted back to back, dispatches per step, and
     the same model in PyTorch fp32 eager on the same device.
Ratios are ours / PyTorch's time (or PyTorch's rate / ours) measured in the same process.
"""

from __future__ import annotations

import time

import numpy as np

from ..config import TrainConfig, preset
from . import parity_cases, parity_runner, step_bench
from .executor import run_sync
from .matmul_rules import is_gpu_adapter, matmul_forward_overrides
from .native import open_device
from .registry import matmul_entry


def _torch_device():
    try:
        import torch
    except ImportError:
        return None, None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch, ("cuda" if torch.cuda.is_available() else "cpu")


def _torch_sync(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


def gate(ex) -> tuple[list, list, dict]:
    bundle = parity_cases.build_bundle(workgroup_bytes=ex.max_workgroup_bytes, coop=ex.coop_ok)  # what it can run
    results = []
    for meta in bundle.index["cases"]:
        r = run_sync(parity_runner.run_case(ex, meta, bundle.blobs[meta["file"]]))
        results.append(r)
        err = max((c.max_abs_err for c in r.checks), default=float("nan"))
        print(f"{'PASS' if r.passed else 'FAIL'}  {r.name}  (max abs error {err:.2e})"
              + (f"  {r.error}" if r.error else ""))
    print(parity_runner.summary_text(results))
    return results, bundle.index["cases"], bundle.blobs


def kernel_timings(ex, results, metas, blobs) -> list:
    passing = {r.name for r in results if r.passed}
    timings = []
    for meta in metas:
        if meta["name"] in passing:
            timings += run_sync(parity_runner.time_case(ex, meta, blobs[meta["file"]]))
    for t in timings:
        print("  " + parity_runner.format_timing(t))
    return timings


def random_operands(ex, N, K, M):
    """(x (N,K), w (K,M) of standard normal f32, y (N,M) unwritten) as buffers on the device."""
    r = np.random.default_rng(0)
    x = ex.upload(r.standard_normal(N * K, dtype=np.float32).tobytes())
    w = ex.upload(r.standard_normal(K * M, dtype=np.float32).tobytes())
    return x, w, ex.alloc(4 * N * M)


def _matmul_plan(ex, N, K, M, tiles: dict | None = None):
    """(plan, buffers): one matmul_forward (N,K)x(K,M) on random inputs, recorded as a replayable plan, with
    the entry (scalar or vec4-load twin, registry.matmul_entry), tile size and sliced K the model's own
    dispatches use for that shape (gpu/model_ops.py) unless `tiles` gives them. Release the buffers after."""
    x, w, y = random_operands(ex, N, K, M)
    params = {"N": N, "K": K, "M": M, "accumulate": 0}
    if tiles is None:
        tiles = matmul_forward_overrides("matmul_forward", N, K, M, ex.adapter_info, ex.max_workgroup_bytes)
    ex.begin_plan()  # recorded once, replayed: what is timed is the GPU's work, not Python's bookkeeping
    ex.dispatch(matmul_entry("matmul_forward", N, K, M, ex.adapter_info), [x, w, y], params, overrides=tiles)
    return ex.end_plan(), (x, w, y)


def _run_plan(ex, plan, y, reps: int) -> float:
    """ms per dispatch of `reps` replays in one submission, up to the read-back that waits for them."""
    t0 = time.perf_counter()
    for _ in range(reps):
        ex.replay(plan)
    run_sync(ex.read(y, 4))
    return (time.perf_counter() - t0) * 1e3 / reps


def _time_matmul(ex, N, K, M, reps, tiles: dict | None = None) -> float:
    """Median ms per dispatch of matmul_forward (N,K)x(K,M) (_matmul_plan), `reps` dispatches per
    submission, after one untimed run of as many. The dispatch is replayed from a plan, as the
    training step's are. `tiles`: those overrides when the caller has them already."""
    plan, buffers = _matmul_plan(ex, N, K, M, tiles)
    return median_replays(ex, plan, buffers, reps)


def median_replays(ex, plan, buffers, reps: int) -> float:
    """Median ms per dispatch of `plan` (one product into buffers[2]): three runs of `reps` replays after
    one untimed run; the buffers are released after."""
    _run_plan(ex, plan, buffers[2], reps)  # warm-up, untimed
    runs = [_run_plan(ex, plan, buffers[2], reps) for _ in range(3)]
    for b in buffers:
        ex.release(b)
    return float(np.median(runs))


def _time_torch_matmul(torch, device, N, K, M, reps, dtype=None) -> float | None:
    """Median ms per torch.matmul (N,K)x(K,M) on `device`, in `dtype` (None: float32)."""
    if torch is None:
        return None
    kw = {} if dtype is None else {"dtype": dtype}
    x = torch.randn(N, K, device=device, **kw)
    w = torch.randn(K, M, device=device, **kw)
    for _ in range(reps):  # warm-up, as ours
        torch.matmul(x, w)
    _torch_sync(torch, device)
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.matmul(x, w)
        _torch_sync(torch, device)
        runs.append((time.perf_counter() - t0) * 1e3 / reps)
    return float(np.median(runs))


def gemm_shapes(models: list[str], gemm: int) -> list[tuple[str, int, int, int]]:
    """(label, N, K, M): the model's own matmuls at B=8 x full context, plus N^3 when asked."""
    shapes = []
    for name in models:
        c = preset(name)
        N, C, V = 8 * c.block_size, c.n_embd, c.vocab_size
        shapes += [(f"{name} qkv", N, C, 3 * C), (f"{name} fc", N, C, 4 * C),
                   (f"{name} fc_proj", N, 4 * C, C), (f"{name} lm_head", N, C, V)]
    if gemm:
        shapes.append((f"{gemm}^3", gemm, gemm, gemm))
    return shapes


def gemm_repeats(flops: int) -> int:
    """Dispatches per timed run of one GEMM shape: enough that each run holds ~4e11 FLOP (several ms on a
    large GPU), so the run's closing read-back (~0.1-0.4 ms through the engine's buffer mapping) and
    torch's synchronize are a small share of what is timed; at least 3, at most 200 (small shapes).
    Against a fixed 2e10 FLOP per run (a 4096^3 run: ONE dispatch plus a read-back), same kernels, H200
    under Dawn, 2026-12-03 (gpu-h200-dawn-2026-12-03-pass8-timing-only.json, benchmarks/README.md):
    4096^3 4.63 -> 4.28 ms, the large model's fc 0.273 -> 0.159 ms, qkv 0.158 -> 0.114 ms (PyTorch's:
    2.82 -> 2.71, 0.103 -> 0.091, 0.086 -> 0.083)."""
    return max(3, min(200, -(-400_000_000_000 // flops)))


GEMM_WARM_UP_S = 1.0


def warm_up(ex, torch, device, seconds: float = GEMM_WARM_UP_S) -> int:
    """Products back to back for `seconds` on both sides before any is timed; returns how many runs.
    The GPU's clocks are low after idling: without this, the table's first row (the tiny model's qkv)
    was timed at 0.026 ms against 0.009 ms for the next, bigger, one (H200 under Dawn, 2026-12-03,
    gpu-h200-dawn-2026-12-03-pass8.json). 2048^3 on a GPU adapter, 256^3 on a CPU one."""
    n = 2048 if is_gpu_adapter(ex.adapter_info) else 256
    plan, buffers = _matmul_plan(ex, n, n, n)
    theirs = (torch.randn(n, n, device=device), torch.randn(n, n, device=device)) if torch is not None else None
    t0, runs = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds or runs == 0:
        _run_plan(ex, plan, buffers[2], 3)
        if theirs is not None:
            for _ in range(3):
                torch.matmul(*theirs)
            _torch_sync(torch, device)
        runs += 1
    for b in buffers:
        ex.release(b)
    return runs


def gemm_table(ex, torch, device, models, gemm, warm_up_s: float = GEMM_WARM_UP_S) -> list[dict]:
    rows = []
    warm_up(ex, torch, device, warm_up_s)
    print(f"\n{'GEMM':<18} {'ours ms':>9} {'GFLOP/s':>9} {'torch ms':>9} {'GFLOP/s':>9} {'ours/torch':>10}  "
          f"(torch on {device}, TF32 off)")
    for label, N, K, M in gemm_shapes(models, gemm):
        flops = 2 * N * K * M
        reps = gemm_repeats(flops)
        overrides = matmul_forward_overrides("matmul_forward", N, K, M, ex.adapter_info, ex.max_workgroup_bytes)
        ours = _time_matmul(ex, N, K, M, reps, overrides)
        theirs = _time_torch_matmul(torch, device, N, K, M, reps)
        row = {"shape": label, "N": N, "K": K, "M": M, "overrides": overrides, "dispatches_per_run": reps,
               "ours_ms": ours, "ours_gflops": flops / ours / 1e6,
               "torch_ms": theirs, "torch_gflops": flops / theirs / 1e6 if theirs else None,
               "rate_ratio_ours_over_torch": theirs / ours if theirs else None}
        rows.append(row)
        t = (f"{theirs:9.3f} {row['torch_gflops']:9.1f} {row['rate_ratio_ours_over_torch']:10.2f}"
             if theirs else f"{'-':>9} {'-':>9} {'-':>10}")
        print(f"{label:<18} {ours:9.3f} {row['ours_gflops']:9.1f} {t}")
    return rows


def _batch(cfg, B, seed=0):
    r = np.random.default_rng(seed)
    idx = r.integers(0, cfg.vocab_size, size=(B, cfg.block_size + 1))
    return idx[:, :-1], idx[:, 1:]


def time_gpu_step(ex, name: str, repeats: int, precision: str = "fp32") -> tuple[float, int]:
    """(median ms per training step, dispatches per step) of the GPU backend at B=8, full context
    (gpu/step_bench.py, as the bench page measures it)."""
    t = run_sync(step_bench.time_step(ex, name, batch=8, repeats=repeats, runs=3, precision=precision))
    return t.ms_per_step, t.dispatches_per_step


def time_torch_step(torch, device, name: str, repeats: int, amp: bool = False) -> float | None:
    """Median ms per training step of the preset in PyTorch eager on `device` (batch 8, full context):
    fp32 (TF32 off), or with amp=True under bf16 autocast (PyTorch's mixed precision: the products in
    bf16, f32 weights and optimizer)."""
    if torch is None:
        return None
    from ..reference.init import init_params
    from ..reference.torch_model import TorchGPT

    cfg, tc = preset(name), TrainConfig()
    m = TorchGPT(cfg, init_params(cfg, 1), device=device)
    opt = m.make_optimizer(1e-3, beta1=tc.beta1, beta2=tc.beta2, eps=tc.adam_eps, weight_decay=tc.weight_decay)
    x, y = _batch(cfg, 8)
    params = list(m.params.values())

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=amp):
            _, loss = m.forward(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        opt.step()

    step()
    _torch_sync(torch, device)
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            step()
        _torch_sync(torch, device)
        runs.append((time.perf_counter() - t0) * 1e3 / repeats)
    return float(np.median(runs))


def bench_gpu(args) -> dict:
    mixed = getattr(args, "precision", "fp32") == "mixed"
    ex = open_device(args.gpu, mixed=mixed)
    print(f"adapter: {ex.adapter_info}")
    models = [m.strip() for m in args.models.split(",")]
    out = {"backend": "gpu", "engine": ex.engine, "adapter": ex.adapter_info, "precision": "mixed" if mixed else "fp32"}
    results, metas, blobs = gate(ex)
    out["gate"] = [{"name": r.name, "passed": r.passed, "error": r.error,
                    "max_abs_err": max((c.max_abs_err for c in r.checks), default=None)} for r in results]
    if mixed:
        from . import bench_mixed  # it builds on this module
        out["mixed_gate"] = bench_mixed.mixed_gate(ex)
    if not all(r.passed for r in results) or (mixed and not out["mixed_gate"]["passed"]):
        return out
    out["kernels"] = [t.to_json() for t in kernel_timings(ex, results, metas, blobs)]
    torch, device = _torch_device()
    out["torch_device"] = device
    if torch is not None:
        out["torch_device_name"] = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    out["gemm"] = gemm_table(ex, torch, device, models, getattr(args, "gemm", 0))
    if mixed:
        out["gemm_mixed"] = bench_mixed.coop_gemm_table(ex, torch, device, gemm_shapes(models, getattr(args, "gemm", 0)))
    print(f"\n{'train step':<10} {'ours ms':>9} {'dispatches':>10} {'torch ms':>9} {'ours/torch':>10}  (B=8, full context)")
    out["steps"] = []
    for name in models:
        ours, dispatches = time_gpu_step(ex, name, args.repeats)
        theirs = time_torch_step(torch, device, name, args.repeats)
        row = {"model": name, "batch": 8, "ours_ms": ours, "dispatches_per_step": dispatches,
               "torch_ms": theirs, "ratio_ours_over_torch": ours / theirs if theirs else None}
        if mixed:
            row.update(bench_mixed.mixed_step_row(ex, torch, device, name, args.repeats, ours, theirs))
        out["steps"].append(row)
        t = f"{theirs:9.3f} {ours / theirs:10.2f}" if theirs else f"{'-':>9} {'-':>10}"
        print(f"{name:<10} {ours:9.3f} {dispatches:10d} {t}")
    return out
