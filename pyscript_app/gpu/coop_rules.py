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


# Blocks (WY, WX subgroups; RT, CT 16 x 16 tiles per subgroup; BK) by the products' output count.
COOP_BIG = {"WY": 2, "WX": 2, "RT": 4, "CT": 4, "BK": 32}     # 128 x 128 blocks, 128 invocations
COOP_SMALL = {"WY": 2, "WX": 2, "RT": 2, "CT": 2, "BK": 32}   # 64 x 64 blocks
# COOP_BIG when it gives at least this many workgroups (two per multiprocessor of an H100), else
# COOP_SMALL: products with few outputs want more, smaller blocks.
COOP_BIG_WORKGROUPS = 264


def coop_block(N: int, M: int) -> dict[str, int]:
    """The block overrides for an (N,M) output."""
    big = math.ceil(N / 128) * math.ceil(M / 128)
    return dict(COOP_BIG if big >= COOP_BIG_WORKGROUPS else COOP_SMALL)


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
