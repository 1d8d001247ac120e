"""Records shaders/attention.wgsl dispatches for one attention shape: forward, backward, KV decode
(wide heads, D >= ROWS_*_MIN_HEAD_DIM: shaders/attention_rows*.wgsl, one row per invocation).

Pure Python (runs natively and in Pyodide). Letters as in config.py; D = C // H.

    attn = AttentionOps(ex, B, T, C, H, Tmax)        # once per run: allocates its scratch
    attn.forward(qkv, y, lse)                        # qkv (B,T,3C) -> y (B,T,C), lse (B,H,T)
    attn.backward(dy, qkv, y, lse, dqkv)             # dqkv (B,T,3C) OVERWRITTEN
    attn.decode(qkv_row, k_cache, v_cache, y_row, pos)   # batch 1, one token at position pos

Buffers are GpuBuffer or 256-aligned BufferView, f32. Methods only record (nothing is submitted or
read), except that decode() submits what is recorded before it changes `pos` (see decode).
Replaying forward/backward/decode with the same buffers creates no GPU object: the shape uniforms
are dict values (cached by content), and `pos` goes through one uniform buffer owned here.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import registry, uniforms
from .executor import Executor, Target
from .registry import is_gpu_adapter

MAX_HEAD_DIM = 64
TILE_VEC4 = 128  # vec4 slots of one row tile in attention.wgsl: BQ * D/4 <= 128
MAX_TILE_ROWS = 16  # MAX_BQ in attention.wgsl


# Heads at least this wide use attention_rows*.wgsl (a row's q and accumulators in registers): on an
# H200 the column-per-invocation kernels were shared-memory bound there. Narrower heads (the nano and
# tiny presets, and the browser's) keep attention.wgsl, whose workgroups a 4-wide head fills better.
# Forward and backward are chosen separately (each measured against its attention.wgsl twin).
ROWS_FORWARD_MIN_HEAD_DIM = 32
ROWS_BACKWARD_MIN_HEAD_DIM = 32


def rows_forward_overrides(D: int, T: int) -> dict[str, int]:
    """attention_rows_forward's overrides: 64 query rows per workgroup (32 for short contexts),
    16 keys per workgroup-memory tile."""
    return {"D": D, "ROWS": 64 if T > 32 else 32, "KT": 16}


def rows_backward_overrides(D: int, T: int) -> dict[str, int]:
    """attention_rows_backward's overrides: 64 rows per workgroup (32 for short contexts), 16 keys per
    tile in the dq half, 8 queries per tile in the dk/dv half (12.1 KiB of workgroup memory at D = 64)."""
    return {"D": D, "ROWS": 64 if T > 32 else 32, "KT": 16, "QT": 8}


# The blocks kernels (attention_blocks.wgsl, attention_blocks_backward.wgsl: 64 x 64 block products,
# 256 invocations) on GPU adapters whose workgroup memory holds them (25 KiB forward, 40.5 KiB
# backward), for heads at least BLOCKS_MIN_HEAD_DIM wide (narrower ones are padded to 64 columns there)
# and contexts of at least BLOCKS_MIN_CONTEXT (one 64-row block). Elsewhere (CPU adapters such as
# llvmpipe and SwiftShader, the browser's default 16 KiB) the rows kernels stay. Measured on an H200
# under Dawn (2026-12-03, attention-blocks3-h200-dawn-2026-12-03.json, ms per step, rows -> blocks):
# large (D = 64, T = 256) 17.00-17.02 -> 16.35-16.42; medium (D = 32, T = 128) 3.92 -> 3.74-3.82.
# Shorter contexts are unmeasured (no preset has D >= 32 with T < 64) and keep the rows kernels.
BLOCKS_MIN_HEAD_DIM = 32
BLOCKS_MIN_CONTEXT = 64
BLOCKS_FORWARD_WORKGROUP_BYTES = 16384 + 8192 + 1024
BLOCKS_BACKWARD_WORKGROUP_BYTES = 2 * 16384 + 8192 + 512


def _blocks(D: int, T: int, adapter_info: Mapping[str, object] | None, workgroup_bytes: int, need: int) -> bool:
    return (D >= BLOCKS_MIN_HEAD_DIM and T >= BLOCKS_MIN_CONTEXT and workgroup_bytes >= need
            and is_gpu_adapter(adapter_info))


def kernel_overrides(kernel: str, D: int, T: int) -> dict[str, int]:
    """The overrides AttentionOps dispatches attention kernel `kernel` with (head width D, context T)."""
    if kernel == "attention_rows_forward":
        return rows_forward_overrides(D, T)
    if kernel == "attention_rows_backward":
        return rows_backward_overrides(D, T)
    if kernel.startswith("attention_blocks"):
        return {"D": D}
    return {"D": D, "BQ": tile_rows(D)}  # attention.wgsl


def forward_choice(D: int, T: int, adapter_info: Mapping[str, object] | None,
                   workgroup_bytes: int) -> tuple[str, dict[str, int]]:
    """(kernel, overrides) of the attention forward for head width D and context T on this adapter."""
    if _blocks(D, T, adapter_info, workgroup_bytes, BLOCKS_FORWARD_WORKGROUP_BYTES):
        kernel = "attention_blocks_forward"
    else:
        kernel = "attention_rows_forward" if D >= ROWS_FORWARD_MIN_HEAD_DIM else "attention_forward"
    return kernel, kernel_overrides(kernel, D, T)


def backward_choice(D: int, T: int, adapter_info: Mapping[str, object] | None,
                    workgroup_bytes: int) -> tuple[str, dict[str, int]]:
    """(kernel, overrides) of the attention backward for head width D and context T on this adapter."""
    if _blocks(D, T, adapter_info, workgroup_bytes, BLOCKS_BACKWARD_WORKGROUP_BYTES):
        kernel = "attention_blocks_backward"
    else:
        kernel = "attention_rows_backward" if D >= ROWS_BACKWARD_MIN_HEAD_DIM else "attention_backward"
    return kernel, kernel_overrides(kernel, D, T)


def tile_rows(D: int) -> int:
    """Query rows per workgroup tile (the BQ override) for head width D: the largest that fits the
    shader's workgroup arrays, so a workgroup has BQ * D/4 <= 128 invocations."""
    return min(MAX_TILE_ROWS, TILE_VEC4 // (D // 4))


class AttentionOps:
    """Causal multi-head attention of width C with H heads, for batches (B, T) and caches of Tmax."""

    def __init__(self, ex: Executor, B: int, T: int, C: int, H: int, Tmax: int) -> None:
        if H <= 0 or C % H:
            raise ValueError(f"C={C} is not divisible by H={H}")
        D = C // H
        if D % 4 or not 4 <= D <= MAX_HEAD_DIM:
            raise ValueError(f"head width D={D} must be a multiple of 4 in 4..{MAX_HEAD_DIM}")
        if not 1 <= T <= Tmax:
            raise ValueError(f"need 1 <= T <= Tmax, got T={T}, Tmax={Tmax}")
        self.ex = ex
        self.B, self.T, self.C, self.H, self.D, self.Tmax = B, T, C, H, D, Tmax
        self.overrides = {"D": D, "BQ": tile_rows(D)}
        self.forward_kernel, self.forward_overrides = forward_choice(D, T, ex.adapter_info, ex.max_workgroup_bytes)
        self.backward_kernel, self.backward_overrides = backward_choice(
            D, T, ex.adapter_info, ex.max_workgroup_bytes)
        self.dims = {"B": B, "T": T, "C": C, "H": H}
        self.decode_params = ex.uniform_buffer("attention_decode", "attention.decode params")
        self._decode_pos: int | None = None  # the pos held by decode_params

    def forward(self, qkv: Target, y: Target, lse: Target) -> None:
        """Record y (B,T,C) and lse (B,H,T) from qkv (B,T,3C)."""
        self.ex.dispatch(self.forward_kernel, [qkv, y, lse], self.dims, overrides=self.forward_overrides)

    def backward(self, dy: Target, qkv: Target, y: Target, lse: Target, dqkv: Target) -> None:
        """Record dqkv (B,T,3C) from dy (B,T,C) and the forward's qkv, y, lse: one dispatch whose
        query-tile workgroups write dq and key-tile workgroups dk, dv."""
        self.ex.dispatch(self.backward_kernel, [dy, qkv, y, lse, dqkv], self.dims, overrides=self.backward_overrides)

    def decode(self, qkv_row: Target, k_cache: Target, v_cache: Target, y_row: Target, pos: int) -> None:
        """Record one decode step for batch 1: qkv_row (3C,) is the token at position pos; its k and
        v go into k_cache, v_cache (H,Tmax,D) at pos, and y_row (C,) gets its attention over cache
        positions 0..pos (which must already hold the earlier tokens' k and v).

        pos lives in a uniform buffer written through the queue, and a queue write lands before the
        NEXT submit; so when pos changes, the work recorded so far (with the old pos) is submitted
        first. Record all layers of one token, then read: one submit per token, as sampling needs."""
        if not 0 <= pos < self.Tmax:
            raise ValueError(f"position {pos} outside the cache 0..{self.Tmax - 1}")
        if pos != self._decode_pos:
            self.ex.submit()
            values = {"C": self.C, "H": self.H, "Tmax": self.Tmax, "pos": pos}
            self.ex.write_uniform(self.decode_params, "attention_decode", values)
            self._decode_pos = pos
        self.ex.dispatch("attention_decode", [qkv_row, k_cache, v_cache, y_row], self.decode_params,
                         overrides=self.overrides, shape={"H": self.H})

    def decode_write(self, pos: int) -> tuple[Target, bytes]:
        """(decode_params, its bytes for `pos`): the write a replayed decode step (Executor.run_plan)
        queues instead of calling decode() again; decode() then knows the buffer holds pos."""
        if not 0 <= pos < self.Tmax:
            raise ValueError(f"position {pos} outside the cache 0..{self.Tmax - 1}")
        self._decode_pos = pos
        values = {"C": self.C, "H": self.H, "Tmax": self.Tmax, "pos": pos}
        return self.decode_params, uniforms.pack(registry.get("attention_decode").uniform, values)
