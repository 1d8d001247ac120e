"""`tabgpt bench --backend gpu --precision mixed`: what the mixed-precision path adds to gpu/bench.py.

  gate:  gpu/mixed_check.py (one mixed step of each of two small models against reference/mixed.py and the f32
         reference); nothing is timed unless it passes.
  GEMM:  each shape of the fp32 table on shaders/matmul_coop.wgsl (f32 operands rounded to f16 in the
         kernel, f32 results), beside torch.matmul in bf16 on the same device (its AMP's products).
  step:  the preset's training step with precision "mixed", beside the same model in PyTorch eager
         under bf16 autocast (AMP) and in fp32; ratios are ours / theirs, measured in the same process.
"""

from __future__ import annotations

from .bench import _time_torch_matmul, gemm_repeats, median_replays, random_operands, time_gpu_step, time_torch_step
from .coop_rules import coop_block, coop_values
from .mixed_check import check_mixed_steps


def mixed_gate(ex) -> dict:
    r = check_mixed_steps(ex)
    print(f"{'PASS' if r['passed'] else 'FAIL'}  mixed-precision steps, contexts "
          f"{', '.join(str(m['model']['block_size']) for m in r['models'])}  (relative L2 per tensor: at most "
          f"{r['mixed_err']:.2e} from the mixed reference, {r['worst_ratio']:.2f} of the allowance from numpy's own "
          f"sensitivity; {r['f32_err']:.2e} from f32)")
    return r


def _time_coop(ex, N: int, K: int, M: int, reps: int) -> float:
    """Median ms per matmul_coop dispatch y = x @ w (N,K)x(K,M), replayed from a plan as _time_matmul."""
    x, w, y = random_operands(ex, N, K, M)
    ex.begin_plan()
    unused = ex.alloc(256)
    ex.dispatch("matmul_coop", [x, w, x, y, unused],
                coop_values(N, K, M),
                overrides=coop_block(N, K, M))
    ms = median_replays(ex, ex.end_plan(), (x, w, y), reps)
    ex.release(unused)
    return ms


def coop_gemm_table(ex, torch, device, shapes) -> list[dict]:
    print(f"\n{'GEMM (mixed)':<18} {'ours ms':>9} {'GFLOP/s':>9} {'bf16 ms':>9} {'GFLOP/s':>9} {'ours/torch':>10}")
    rows = []
    for label, N, K, M in shapes:
        flops = 2 * N * K * M
        reps = gemm_repeats(flops)
        ours = _time_coop(ex, N, K, M, reps)
        theirs = _time_torch_matmul(torch, device, N, K, M, reps, torch.bfloat16) if torch else None
        row = {"shape": label, "N": N, "K": K, "M": M, "overrides": coop_block(N, K, M), "dispatches_per_run": reps,
               "ours_ms": ours, "ours_gflops": flops / ours / 1e6, "torch_bf16_ms": theirs,
               "torch_bf16_gflops": flops / theirs / 1e6 if theirs else None,
               "rate_ratio_ours_over_torch_bf16": theirs / ours if theirs else None}
        rows.append(row)
        t = (f"{theirs:9.3f} {row['torch_bf16_gflops']:9.1f} {row['rate_ratio_ours_over_torch_bf16']:10.2f}"
             if theirs else f"{'-':>9} {'-':>9} {'-':>10}")
        print(f"{label:<18} {ours:9.3f} {row['ours_gflops']:9.1f} {t}")
    return rows


def mixed_step_row(ex, torch, device, name: str, repeats: int, fp32_ms: float, torch_fp32_ms: float | None) -> dict:
    """The mixed step's fields of a steps row: ours mixed, PyTorch AMP bf16, and the ratios."""
    ours, dispatches = time_gpu_step(ex, name, repeats, precision="mixed")
    amp = time_torch_step(torch, device, name, repeats, amp=True)
    row = {"mixed_ms": ours, "mixed_dispatches_per_step": dispatches, "torch_amp_bf16_ms": amp,
           "ratio_mixed_over_torch_amp": ours / amp if amp else None,
           "ratio_mixed_over_torch_fp32": ours / torch_fp32_ms if torch_fp32_ms else None,
           "ratio_mixed_over_ours_fp32": ours / fp32_ms}
    a = f"{amp:9.3f} {ours / amp:10.2f}" if amp else f"{'-':>9} {'-':>10}"
    print(f"{name + ' mixed':<16} {ours:9.3f} {dispatches:10d} {a}  (torch AMP bf16)")
    return row
