"""The matmul family's choice rules: which tile (TM x TN), outputs per invocation (RPI), sliced K
(KGROUPS) and split sums (SPLIT, DX_SPLIT) a product gets, by its shape and the adapter. Each rule
quotes the measurement behind it. gpu/model_ops.py (the training step), gpu/bench.py (the GEMM table),
the parity cases and the lessons call these; gpu/registry.py holds the kernels themselves."""

from __future__ import annotations

from collections.abc import Mapping


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


MATMUL_TILE_SIZES = (128, 64, 32)  # what TM / TN may be
# matmul_tiles takes 128 x 128 when that gives at least this many workgroups, else 64 x 64. Measured
# on an H200 (132 multiprocessors; Dawn, 2026-11-22, the software-pipelined kernel,
# benchmarks/results/matmul-tiles-h200-dawn-2026-11-22.json): 128 x 128 won with 192 or more
# workgroups (4096^3: 1.6x; 2048 x 512 x 2048 forward, 256 workgroups: 1.6x; 2048 x 512 x 1536,
# 192: 1.2x) and lost with 64 or fewer (2048 x 2048 x 512 and every dw of the large model's layers:
# 64 x 64 was 1.3-1.4x faster). 32 x 32 was never faster, not even for the small presets' long-K
# products (matmul-tiles-32-vs-64-h200-dawn-2026-11-22.json): those want split-K, not smaller tiles.
# (All at 8 x 8 outputs per invocation; with 4 x 4, 32 x 32 tiles win for few outputs: matmul_small_outputs.)
MATMUL_BIG_TILE_WORKGROUPS = 160


def _tiles(rows: int, cols: int, tm: int, tn: int) -> int:
    return _ceil_div(rows, tm) * _ceil_div(cols, tn)


def matmul_tiles(*outputs: tuple[int, int]) -> dict[str, int]:
    """Overrides {"TM", "TN"} for a dispatch writing these (rows, cols) outputs: 128 x 128 (each
    load reused most) when that still gives MATMUL_BIG_TILE_WORKGROUPS workgroups, else 64 x 64
    (more workgroups for products with few outputs and a long inner dimension)."""
    t = 128 if sum(_tiles(r, c, 128, 128) for r, c in outputs) >= MATMUL_BIG_TILE_WORKGROUPS else 64
    return {"TM": t, "TN": t}


def matmul_forward_tiles(N: int, K: int, M: int) -> dict[str, int]:
    return matmul_tiles((N, M))


def matmul_slice_depth(TM: int, TN: int, RPI: int = 8) -> int:
    """TK, the k-slice depth matmul_tiles.wgsl derives from the tile and RPI (its override's default)."""
    return min(16, min(TM, TN) // 4) if RPI == 4 else min(8, min(TM, TN) // 8)


def matmul_workgroup_bytes(TM: int, TN: int, KGROUPS: int = 1, RPI: int = 8) -> int:
    """Workgroup memory of a matmul.wgsl pipeline (its a_tile, b_tile and rstd_sh), in bytes."""
    tk = matmul_slice_depth(TM, TN, RPI)
    return 16 * 2 * KGROUPS * tk * ((TM // 4 + 1) + (TN // 4 + 1)) + 4 * TM


MATMUL_FALLBACK_TILES = {"TM": 64, "TN": 64}  # 8,960 bytes: within WebGPU's guaranteed 16 KiB


def matmul_fit(tiles: Mapping[str, int], workgroup_bytes: int) -> dict[str, int]:
    """`tiles`, or MATMUL_FALLBACK_TILES when their workgroup memory exceeds the device's: 128 x 128 takes
    17,408 bytes, and a browser's adapter may grant only WebGPU's default 16 KiB (the pipeline would
    then fail to build)."""
    need = matmul_workgroup_bytes(tiles["TM"], tiles["TN"], tiles.get("KGROUPS", 1), tiles.get("RPI", 8))
    return dict(tiles) if need <= workgroup_bytes else dict(MATMUL_FALLBACK_TILES)


# Sliced K (matmul_tiles.wgsl's KGROUPS) for the plain and residual forward products that
# matmul_small_outputs gives 32 x 32 tiles at RPI 4 (fewer than 256 tiles of 64 x 64: the small and
# medium models' products), on GPU adapters: 4 groups of invocations per tile, each a quarter of the
# inner dimension. Measured on an H200 under Dawn (2026-12-03, variants-r4b-h200-dawn-2026-12-03.json,
# ms per step, two runs): small 1.27 -> 1.08-1.11, medium 3.57 -> 3.05-3.14, large unchanged (none of
# its products qualifies); 2 groups: small 1.12-1.20, medium 3.15-3.27; 2 groups on the 64 x 64 RPI 4
# products too: large 16.04 -> 16.39-16.49.
MATMUL_KGROUPS = 4


def matmul_forward_kgroups(N: int, M: int, tiles: Mapping[str, int], adapter_info: Mapping[str, object] | None,
                           workgroup_bytes: int) -> dict[str, int]:
    """`tiles` plus {"KGROUPS": MATMUL_KGROUPS} for a plain or residual forward product (not the rmsnorm
    entries, which have no sliced K) whose tiles are 32 x 32 at RPI 4, on a GPU adapter whose workgroup
    memory allows it; else `tiles`. (N, M: the output's shape, for callers that patch the rule.)"""
    few = dict(tiles) == {"TM": 32, "TN": 32, "RPI": 4}
    fits = matmul_workgroup_bytes(32, 32, MATMUL_KGROUPS, 4) <= workgroup_bytes
    return {**tiles, "KGROUPS": MATMUL_KGROUPS} if few and fits and is_gpu_adapter(adapter_info) else dict(tiles)


# Forward products with few outputs on GPU adapters: 4 x 4 outputs per invocation (matmul_tiles.wgsl's
# RPI 4, k-slices of 16) instead of 8 x 8. With 8 x 8, the large model's proj and fc_proj (2048 x 512
# outputs) are 512 warps for 132 multiprocessors, ~4 each: too few to hide the loads' latency. A
# stand-alone kernel of each design on an H200 under Dawn (2026-12-03, benchmarks/probes/
# gemm_core_probe.py --small, gemm-core-probe5-small-h200-dawn-2026-12-03.json, TFLOP/s, 8 x 8 at
# 64 x 64 -> RPI 4): large fc_proj 20.9 -> 26.3 (64 x 64), proj 18.4 -> 22.4, medium fc 16.1 -> 19.5;
# below 256 tiles of 64 x 64, 32 x 32 tiles were best: medium fc_proj 5.0 -> 11.6, proj 4.1 -> 7.5,
# qkv 12.1 -> 15.4, small fc_proj 1.2 -> 2.7, small fc 3.4 -> 5.4.
# In the project's kernels (tabgpt bench, same device and date) RPI 4 loses at 512 tiles: large
# lm_head (2048 x 1024 outputs) 0.087 -> 0.098 ms.
MATMUL_SMALL_OUTPUTS_64 = 256  # at least this many 64 x 64 tiles: 64 x 64 at RPI 4; fewer: 32 x 32
MATMUL_SMALL_OUTPUTS_MAX_64 = 512  # from this many 64 x 64 tiles on, RPI 8


def matmul_small_outputs(N: int, M: int, tiles: Mapping[str, int], adapter_info: Mapping[str, object] | None,
                         workgroup_bytes: int) -> dict[str, int]:
    """For a forward product whose rule gave fewer than MATMUL_SMALL_OUTPUTS_MAX_64 tiles of 64 x 64, on a
    GPU adapter whose workgroup memory allows it: RPI 4 at 64 x 64 (at least MATMUL_SMALL_OUTPUTS_64
    tiles) or at 32 x 32 (fewer). Else `tiles` unchanged."""
    n64 = _tiles(N, M, 64, 64)
    if dict(tiles) != {"TM": 64, "TN": 64} or not is_gpu_adapter(adapter_info) or n64 >= MATMUL_SMALL_OUTPUTS_MAX_64:
        return dict(tiles)
    t = 64 if n64 >= MATMUL_SMALL_OUTPUTS_64 else 32
    if matmul_workgroup_bytes(t, t, 1, 4) > workgroup_bytes:
        return dict(tiles)
    return {"TM": t, "TN": t, "RPI": 4}


# Forward products on GPU adapters: 64 x 128 tiles (TM x TN: 128 invocations) instead of 128 x 128
# when the big tiles are fewer than MATMUL_WIDE_BELOW or at least MATMUL_WIDE_FROM. Measured alone on an
# H200 under Dawn (2026-12-03, rect-tiles-probe-h200-dawn-2026-12-03.json, TFLOP/s at 128 x 128 ->
# 64 x 128): large qkv 2048 x 512 -> 1536 (192 big tiles) 19.5 -> 26.1, 4096^3 (1024) 30.8 -> 32.8,
# but large fc 2048 x 512 -> 2048 (256) 26.3 -> 22.8; in the large step ("wide": qkv only,
# variants-probe3-h200-dawn-2026-12-03.json) 17.31 -> 16.87-16.88 ms.
MATMUL_WIDE_BELOW = 256
MATMUL_WIDE_FROM = 512


def matmul_forward_overrides(kernel: str, N: int, K: int, M: int, adapter_info: Mapping[str, object] | None,
                             workgroup_bytes: int) -> dict[str, int]:
    """The overrides of a forward product x (N,K) @ w (K,M) through matmul.wgsl's scalar entry `kernel`
    (or its _v4 twin): its tiles (64 x 128 for some big ones on GPUs, above), 4 x 4 outputs per
    invocation where matmul_small_outputs picks them, and sliced K on top where matmul_forward_kgroups
    picks it (never for the rmsnorm entries, which have none). gpu/model_ops.py
    and the bench's GEMM table both use this."""
    tiles = matmul_fit(matmul_forward_tiles(N, K, M), workgroup_bytes)
    big = _tiles(N, M, 128, 128)
    if tiles["TM"] == 128 and is_gpu_adapter(adapter_info) and not MATMUL_WIDE_BELOW <= big < MATMUL_WIDE_FROM:
        tiles = {"TM": 64, "TN": 128}
    small = matmul_small_outputs(N, M, tiles, adapter_info, workgroup_bytes)
    if kernel.startswith("matmul_forward_rmsnorm"):
        return small
    return matmul_forward_kgroups(N, M, small, adapter_info, workgroup_bytes)


# matmul_dw_split: adapters whose backward dw products are split (the GPUs; a CPU adapter such as
# llvmpipe or SwiftShader has few cores, which the unsplit tiles keep busy).
MATMUL_SPLIT_ADAPTER_TYPES = {"DiscreteGPU", "IntegratedGPU"}
MATMUL_SPLIT_MAX = 8
MATMUL_SPLIT_MIN_CHUNK = 256  # positions per part, at least


def is_gpu_adapter(adapter_info: Mapping[str, object] | None) -> bool:
    """A discrete or integrated GPU (natively reported adapter_type), not a CPU adapter."""
    return str((adapter_info or {}).get("adapter_type") or "") in MATMUL_SPLIT_ADAPTER_TYPES


def matmul_split_chunk(N: int) -> int:
    """The length of one part of a split sum for a batch of N positions: max(MATMUL_SPLIT_MIN_CHUNK, N / 4)."""
    return max(MATMUL_SPLIT_MIN_CHUNK, N // 4)


# Why this rule: dx's tiles sum over M and dw's over N, and a dispatch lasts as long as its longest
# workgroups, so both sums are cut into chunks of about one length. H200 under Dawn (2026-12-03, ms
# per step, split-probe2-h200-dawn-2026-12-03.json): medium 5.66 (no split) -> 4.86 (dw cut only where
# longer than dx's sum) -> 4.38 (this rule, dx cut too); large 19.90 -> 17.85 -> 17.93 (equal within noise).
def matmul_dw_split(N: int, K: int, M: int, adapter_info: Mapping[str, object] | None = None) -> int:
    """SPLIT for the backward of x (N,K) @ w (K,M) (1: matmul_backward; more: matmul_backward_split):
    dw's sum over N in parts of matmul_split_chunk(N), at most MATMUL_SPLIT_MAX; 1 off GPU adapters
    (MATMUL_SPLIT_ADAPTER_TYPES)."""
    if not is_gpu_adapter(adapter_info):
        return 1
    return max(1, min(MATMUL_SPLIT_MAX, N // matmul_split_chunk(N)))


def matmul_dx_split(N: int, K: int, M: int, adapter_info: Mapping[str, object] | None = None) -> int:
    """DX_SPLIT for the backward of x (N,K) @ w (K,M) whose dx feeds rmsnorm_backward (which adds the
    parts): dx's sum over M in parts of matmul_split_chunk(N), at most MATMUL_SPLIT_MAX; 1 off GPU
    adapters."""
    if not is_gpu_adapter(adapter_info):
        return 1
    return max(1, min(MATMUL_SPLIT_MAX, M // matmul_split_chunk(N)))


def matmul_backward_small_outputs(tiles: Mapping[str, int], adapter_info: Mapping[str, object] | None,
                                  workgroup_bytes: int) -> dict[str, int]:
    """The backward products' 64 x 64 tiles (matmul_backward_tiles) at RPI 4 on GPU adapters whose
    workgroup memory allows it. Measured on an H200 under Dawn (2026-12-03,
    variants-r4-h200-dawn-2026-12-03.json, ms per step, RPI 4 in the forward products on both sides):
    small 1.52 -> 1.20, medium 3.50 -> 3.47, large 15.90 -> 15.96 (its big backward products keep
    128 x 128); 32 x 32 tiles at RPI 4 instead: small 1.28, medium 3.66, large 16.20."""
    if dict(tiles) == {"TM": 64, "TN": 64} and is_gpu_adapter(adapter_info) and \
            matmul_workgroup_bytes(64, 64, 1, 4) <= workgroup_bytes:
        return {**tiles, "RPI": 4}
    return matmul_fit(tiles, workgroup_bytes)


def matmul_backward_tiles(N: int, K: int, M: int, split: int = 1, dx_split: int = 1) -> dict[str, int]:
    """Tiles of matmul_backward(_relu): dx (N,K) and dw (K,M) share one pipeline. Each product must
    have enough big tiles on its own: the dispatch lasts as long as its slowest workgroup, and dw's
    inner dimension is N (all the batch's positions: long), so a few big dw tiles are the long pole
    even when dx has plenty (the large model's fc_proj: 64 dw tiles of 128 x 128 x 2048 took 0.69 ms
    on an H200 next to 256 short dx tiles). `split`, `dx_split`: dw's and dx's sums cut into that many
    parts (matmul_dw_split, matmul_dx_split): that many times the workgroups."""
    big = min(dx_split * _tiles(N, K, 128, 128), split * _tiles(K, M, 128, 128)) >= MATMUL_BIG_TILE_WORKGROUPS
    return {"TM": 128, "TN": 128} if big else {"TM": 64, "TN": 64}


# matvec.wgsl's matvec_rows* (GPT-2's linear layers and tied head, weights stored as rows): LANES
# invocations share a row of w and add their partial dot products by a tree of barriers.
# GPU adapters: on an H100 under Dawn (2026-12-07, decode-probe-rows-h100-dawn-2026-12-07.json; ms per
# dispatch of 50 in one submission, Python's recording included), 64 invocations with LANES 32 were the
# fastest or within 4% of it at every 124M shape: (K, M) = (768, 2304) 0.0245 (LANES 8: 0.0281),
# (3072, 768) 0.0283 (LANES 8: 0.0425), the head (768, 50,257) 0.0735 ms = 2.1 TB/s (LANES 8: 0.0797).
# CPU adapters: the barriers cost more than the shared row saves: llvmpipe (lavapipe, 2 shared cores,
# 2026-12-07, the head 1 x 64 @ 50,257, decode-probe-llvmpipe-2026-12-07.json) took 16 ms at LANES 1 with
# 256 invocations per workgroup (20 with 64), 43-330 ms at LANES 2-32.
MATVEC_GPU_OVERRIDES = {"WG": 64, "LANES": 32}
MATVEC_CPU_OVERRIDES = {"WG": 256, "LANES": 1}


def matvec_rows_overrides(adapter_info: Mapping[str, object] | None) -> dict[str, int]:
    """matvec_rows*'s overrides (f32 and f16 weights) on this adapter."""
    return dict(MATVEC_GPU_OVERRIDES if is_gpu_adapter(adapter_info) else MATVEC_CPU_OVERRIDES)
