"""Mixed precision on the GPU's matrix units: when a device can run shaders/matmul_coop.wgsl, which
block each product gets, and how the backward scales its gradient operand into f16's range.

The mixed-precision training step (gpu/model_ops.py with precision "mixed") keeps every tensor in f32
(weights, activations, gradients, AdamW's state) and rounds only the linear layers' operands to f16,
inside the product kernel, accumulating in f32 — what PyTorch's autocast does with bf16, here with
f16 because that is what Dawn's subgroup matrices offer. The numpy statement of the same arithmetic is
reference/mixed.py.

Pure Python (runs natively and in Pyodide)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

# What a device needs: Dawn's subgroup matrices (behind its allow_unsafe_apis instance toggle) with an
# f16 16 x 16 x 16 configuration that accumulates in f32 at subgroup size 32, and f16 in shaders
# (on NVIDIA, Dawn offers shader-f16 only with its vulkan_enable_f16_on_nvidia adapter toggle).
COOP_FEATURES = ("chromium-experimental-subgroup-matrix", "shader-f16")
COOP_DAWN_TOGGLES = ("allow_unsafe_apis", "vulkan_enable_f16_on_nvidia")
COOP_SUBGROUP = 32


def coop_config_listed(configs: Iterable[Mapping[str, object]]) -> bool:
    """Whether the adapter's subgroup matrix configurations include the one matmul_coop.wgsl uses."""
    for c in configs or ():
        if (str(c.get("component_type")) == "f16" and str(c.get("result_component_type")) == "f32"
                and (c.get("m"), c.get("n"), c.get("k")) == (16, 16, 16)
                and c.get("min_subgroup_size") == COOP_SUBGROUP == c.get("max_subgroup_size")):
            return True
    return False


def coop_shape_ok(N: int, K: int, M: int, a_t: bool, b_t: bool) -> bool:
    """matmul_coop's precondition: each operand's contiguous dimension and M are multiples of 4
    (vec4 loads and stores). A (N,K) or stored (K,N) (a_t); B (K,M) or stored (M,K) (b_t)."""
    return (N if a_t else K) % 4 == 0 and (K if b_t else M) % 4 == 0 and M % 4 == 0


# Blocks (WY, WX subgroups; RT, CT 16 x 16 tiles per subgroup; BK), by how many of them fill the GPU.
# Measured as whole mixed steps with every product on one block (H100, Dawn, 2026-12-07,
# coop-block-probe-h100-dawn-2026-12-07.json, and -run1 before it): `large` (N = 2048, K up to 2048)
# took 11.2-11.3 ms on 64 x 64, 12.6-13.2 on 64 x 64 with 64-deep slices, 13.6-14.2 on 128 x 128 and
# 16.0-16.3 on 32 x 32; `medium` (N = 1024, K <= 1024) 2.58-2.62 on 32 x 32 with 64-deep slices, 2.80
# with 32-deep, 3.32-3.33 on 64 x 64 and 4.69-4.93 on 128 x 128; these rules 11.7 and 2.51 (the first
# step timed in its process, `large` 0.4 ms behind the same blocks timed later). A product wants enough
# workgroups for 132 multiprocessors more than big tiles, unless its inner dimension is long, where a
# small block's low reuse costs more than idle multiprocessors. 4096^3 wants 128 x 128 (the bench's GEMM
# table: 64.1 TFLOP/s). Each product of `large`'s step timed alone on 16 blocks x 1, 2, 4 k-runs in
# interleaved rounds (probes/coop_product_probe.py, coop-product-probe-h100-dawn-2026-12-07.json) put
# 128 x 128 first wherever it gives at least 96 workgroups, k-runs counted (fc forward 55.3 TFLOP/s
# against 39.0 on 64 x 64, lm_head forward 50.3 against 34.6, fc and fc_proj dw in 2 runs 50.7 and 52.7),
# and 64 x 64 below that; the step with each product on its fastest block took 9.89-10.02 ms against
# 10.73-10.75 by the rules of the time (128 x 128 from 264 workgroups).
COOP_BIG = {"WY": 2, "WX": 2, "RT": 4, "CT": 4, "BK": 32}     # 128 x 128 blocks, 4 subgroups
COOP_SMALL = {"WY": 2, "WX": 2, "RT": 2, "CT": 2, "BK": 32}   # 64 x 64
COOP_TINY = {"WY": 2, "WX": 2, "RT": 1, "CT": 1, "BK": 64}    # 32 x 32, 64-deep slices
COOP_BIG_WORKGROUPS = 96     # COOP_BIG when it gives at least this many workgroups
COOP_SMALL_WORKGROUPS = 256  # else COOP_SMALL when it gives this many or K > COOP_LONG_K, else COOP_TINY
COOP_LONG_K = 1024
# dw = x.T @ dy sums over all B*T positions into a (K,M) output that may have few blocks (`large`'s proj:
# 64 of 64 x 64 for 132 multiprocessors). Cut into k-runs, each its own workgroups, the runs' parts
# added by the step's one add_parts. On 64 x 64 blocks the runs gave no measurable gain as whole steps
# (H100, Dawn, 2026-12-07, benchmarks/README.md: `large` 10.73 / 10.75 ms with them against 10.84 / 10.73
# without, in interleaved rounds); what they buy is 128 x 128 blocks for dw products whose output alone
# has too few of them (the per-product timings above), so the runs are chosen for those first.
COOP_DW_MAX_SPLIT = 4  # coop_dw_split: at most this many k-runs, each at least COOP_DW_MIN_RUN long
COOP_DW_MIN_RUN = 512


def coop_block(N: int, K: int, M: int, ksplit: int = 1, batches: int = 1) -> dict[str, int]:
    """The block overrides for a product with an (N,M) output and inner dimension K, cut into `ksplit`
    k-runs (coop_dw_split), over `batches` batches."""
    def blocks(side: int) -> int:
        return math.ceil(N / side) * math.ceil(M / side) * ksplit * batches
    if blocks(128) >= COOP_BIG_WORKGROUPS:
        return dict(COOP_BIG)
    return dict(COOP_SMALL if blocks(64) >= COOP_SMALL_WORKGROUPS or K // ksplit > COOP_LONG_K else COOP_TINY)


def coop_values(N: int, K: int, M: int, a_t: bool = False, b_t: bool = False, a_scale: float = 1.0,
                b_scale: float = 1.0, out_scale: float | None = None, part_stride: int = 0,
                **batched: int) -> dict[str, object]:
    """matmul_coop's uniform values: a plain product (rows of the operands' stored layouts packed, one
    batch) unless `batched` gives strides, heads, batches or batch offsets (the kernel's header).
    out_scale defaults to 1 / (a_scale * b_scale), which undoes the operands' scales exactly."""
    values = {"N": N, "K": K, "M": M, "a_scale": a_scale, "b_scale": b_scale,
              "out_scale": 1.0 / (a_scale * b_scale) if out_scale is None else out_scale, "part_stride": part_stride,
              "lda": N if a_t else K, "ldb": K if b_t else M, "ldy": M, "heads": 1, "batches": 1,
              "a_base": 0, "a_bs": 0, "a_hs": 0, "b_base": 0, "b_bs": 0, "b_hs": 0, "y_base": 0, "y_bs": 0, "y_hs": 0}
    unknown = set(batched) - set(values)
    if unknown:
        raise KeyError(f"matmul_coop has no uniform {sorted(unknown)}")
    values.update(batched)
    return values


def coop_dw_split(N: int, K: int, M: int) -> int:
    """How many k-runs matmul_coop cuts dw = x.T @ dy into, for a layer x (N,K) @ w (K,M): dw's output
    (K,M) has few blocks while its inner dimension N (batch x context) is long. The fewest runs that
    give 128 x 128 blocks COOP_BIG_WORKGROUPS workgroups (coop_block then picks them), else as many as
    64 x 64 blocks want for COOP_SMALL_WORKGROUPS; each run at least COOP_DW_MIN_RUN positions."""
    def runs_for(side: int, workgroups: int) -> int:
        runs = 1
        while runs < COOP_DW_MAX_SPLIT and N // (2 * runs) >= COOP_DW_MIN_RUN and \
                math.ceil(K / side) * math.ceil(M / side) * runs < workgroups:
            runs *= 2
        return runs
    big = runs_for(128, COOP_BIG_WORKGROUPS)
    if math.ceil(K / 128) * math.ceil(M / 128) * big >= COOP_BIG_WORKGROUPS:
        return big
    return runs_for(64, COOP_SMALL_WORKGROUPS)


def coop_block_ok(block: Mapping[str, int]) -> bool:
    """Whether matmul_coop.wgsl can run a block: 1..4 tiles per subgroup each way, 16 | BK, and every
    invocation staging a whole number of vec4 of each operand per slice, at most 8."""
    threads = 32 * block["WY"] * block["WX"]
    bm, bn, bk = block["WY"] * block["RT"] * 16, block["WX"] * block["CT"] * 16, block["BK"]
    loads = [bm * bk // 4, bk * bn // 4]
    return (1 <= block["RT"] <= 4 and 1 <= block["CT"] <= 4 and bk % 16 == 0
            and all(n % threads == 0 and 1 <= n // threads <= 8 for n in loads))


def coop_workgroup_bytes(block: Mapping[str, int], a_t: bool, b_t: bool) -> int:
    """Workgroup memory of a matmul_coop pipeline: two f16 buffers per operand (rows padded by 8
    halves) and a 16 x 16 f32 scratch per subgroup."""
    bm, bn, bk = block["WY"] * block["RT"] * 16, block["WX"] * block["CT"] * 16, block["BK"]
    a_rows, a_cols = (bk, bm) if a_t else (bm, bk)
    b_rows, b_cols = (bn, bk) if b_t else (bk, bn)
    return 2 * 2 * (a_rows * (a_cols + 8) + b_rows * (b_cols + 8)) + 4 * 256 * block["WY"] * block["WX"]


def gradient_scale(N: int) -> float:
    """The power of two the backward multiplies its gradient operand by before rounding it to f16
    (and divides the f32 result by, exactly): the mean loss's gradient is O(1 / N) per element, which
    f16 (smallest normal 2^-14) would round coarsely or flush to zero; times the largest power of two
    <= N it is O(1), far from f16's largest value (65504)."""
    return float(2 ** max(0, int(N).bit_length() - 1))
