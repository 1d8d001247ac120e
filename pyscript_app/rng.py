"""Counter-based random numbers that pure Python, numpy and WGSL compute bit for bit alike.

Why counter-based: a browser tab and a native worker that share a seed must start from
bit-identical weights and draw identical batches, without shipping a random stream around.
Every draw is a pure function of (seed, stream, index), built only from 32-bit integer
multiply / xor / shift (which wrap identically everywhere) and float operations that IEEE-754
rounds exactly (see `normal_from_bits`).

The hash is PCG's output permutation ("pcg_hash", Jarzynski & Olano 2020):
    state = x * 747796405 + 2891336453
    word  = ((state >> ((state >> 28) + 4)) ^ state) * 277803737
    out   = (word >> 22) ^ word                      all mod 2**32

Parameter init (shaders/init.wgsl computes the same):
    key      = pcg(pcg(seed) ^ tensor_index)          tensor_index = position in param_shapes()
    bits_j   = pcg(key ^ pcg(4 * i + j))  for j in 0..3, i = flat element index
    s        = sum_j (bits_j >> 10)                   four 22-bit integers, s < 2**24: exact in f32
    z        = f32(s) * 2**-22 - 2.0                  exact: Irwin-Hall(4) - 2, mean 0, var 1/3
    w        = z * scale                              scale = f32(std * sqrt(3)); one rounding
So z is approximately normal with unit variance after scaling by sqrt(3), bounded by |z| < 2.
"""

from __future__ import annotations

MASK32 = 0xFFFFFFFF
_INV_2_22 = 1.0 / (1 << 22)


def pcg(x: int) -> int:
    """PCG hash of a uint32 -> uint32 (pure Python)."""
    state = (x * 747796405 + 2891336453) & MASK32
    word = (((state >> ((state >> 28) + 4)) ^ state) * 277803737) & MASK32
    return ((word >> 22) ^ word) & MASK32


def tensor_key(seed: int, tensor_index: int) -> int:
    return pcg(pcg(seed & MASK32) ^ (tensor_index & MASK32))


def irwin_hall_sum(key: int, i: int) -> int:
    """s = sum of four 22-bit draws for element i; s < 2**24 so f32(s) is exact."""
    base = (4 * i) & MASK32
    return sum(pcg(key ^ pcg((base + j) & MASK32)) >> 10 for j in range(4))


def f32(x: float) -> float:
    """Round a Python float (f64) to the nearest float32 value."""
    import struct

    return struct.unpack("<f", struct.pack("<f", x))[0]


def init_scale(std: float) -> float:
    """The f32 multiplier applied to z; passed to the GPU kernel as this exact f32."""
    return f32(std * 3.0**0.5)


def init_values(seed: int, tensor_index: int, n: int, std: float) -> list[float]:
    """Pure-Python init of one tensor (slow; for small tensors and for Pyodide without a GPU).

    Each value is computed in float64 from exact operands and then rounded once to f32, which is
    what the f32 multiply in numpy / WGSL does (z and scale are exact f32 values)."""
    key = tensor_key(seed, tensor_index)
    scale = init_scale(std)
    return [f32((irwin_hall_sum(key, i) * _INV_2_22 - 2.0) * scale) for i in range(n)]


def batch_starts(seed: int, step: int, batch: int, n_tokens: int, block: int) -> list[int]:
    """Window starts for one training step: each in [0, n_tokens - block - 1], all reachable.

    A window needs block + 1 tokens (inputs and the shifted targets)."""
    span = n_tokens - block
    if span <= 0:
        raise ValueError(f"need more than {block} tokens, have {n_tokens}")
    key = pcg(pcg(seed & MASK32) ^ 0x9E3779B9)
    base = (step * batch) & MASK32
    return [pcg(key ^ pcg((base + b) & MASK32)) % span for b in range(batch)]


# --- dropout masks ------------------------------------------------------------------------------
# A dropout mask is never stored: every host recomputes it from (seed, step, site, element index),
# the backward pass included (reference/dropout.py, shaders/dropout.wgsl):
#     key_site = pcg(pcg(pcg(pcg(seed) ^ DROPOUT_STREAM) ^ step) ^ pcg(site))    dropout_key()
#     keep[i]  = pcg(key_site ^ pcg(i)) >= threshold       threshold = round(p * 2**32)
#     y[i]     = x[i] * scale if keep[i] else 0            scale = f32(1 / (1 - p)): inverted dropout
# step is the AdamW step the mask belongs to (1 on the first step; a resumed run continues it).
# Sites: 0 = the embedding sum wte+wpe; 1 + 2*l = layer l's attention branch (after proj);
# 2 + 2*l = layer l's MLP branch (after fc_proj). i is the flat index into the (N,C) activation.

DROPOUT_STREAM = 0x5BD1E995  # keeps dropout keys apart from init (tensor index) and batch keys
DROPOUT_SITE_EMBEDDING = 0


def dropout_site(layer: int, branch: str) -> int:
    """The site number of layer `layer`'s branch "attn" or "mlp"."""
    return 1 + 2 * layer + {"attn": 0, "mlp": 1}[branch]


def dropout_site_count(n_layer: int) -> int:
    return 1 + 2 * n_layer


def dropout_key(seed: int, step: int, site: int) -> int:
    step_key = pcg(pcg(pcg(seed & MASK32) ^ DROPOUT_STREAM) ^ (step & MASK32))
    return pcg(step_key ^ pcg(site & MASK32))


def dropout_keys(seed: int, step: int, n_layer: int) -> list[int]:
    """The key of every site of one step, indexed by site (what the GPU keeps in a small buffer)."""
    return [dropout_key(seed, step, s) for s in range(dropout_site_count(n_layer))]


def dropout_threshold(p: float) -> int:
    """keep iff bits >= threshold: P(keep) = 1 - threshold / 2**32 (= 1 - p to within 2**-32)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p!r}")
    return min(MASK32, int(round(p * 2.0**32)))


def dropout_scale(p: float) -> float:
    """The f32 factor applied to kept elements, 1 / (1 - p) rounded once to float32."""
    return f32(1.0 / (1.0 - p))


def dropout_keep(key: int, i: int, threshold: int) -> bool:
    """Pure-Python mask bit of element i (slow; the numpy and WGSL versions are vectorised)."""
    return pcg(key ^ pcg(i & MASK32)) >= threshold


# --- sampling draws -----------------------------------------------------------------------------
# The uniform draw that chooses a sampled token (reference/token_choice.py, shaders/choose_token.wgsl):
#     key  = pcg(pcg(seed) ^ SAMPLE_STREAM)                     sample_key(), computed by the host
#     u    = (pcg(key ^ pcg(step)) >> 8) * 2**-24               sample_uniform(): 24 bits, exact in f32
# so u is in [0, 1 - 2**-24] and every host (pure Python, numpy, WGSL) draws the same u for a step.
# step counts the tokens a generation has drawn (0 for the first).

SAMPLE_STREAM = 0x68E31DA4  # keeps sampling keys apart from init, batch and dropout keys
_INV_2_24 = 1.0 / (1 << 24)


def sample_key(seed: int) -> int:
    return pcg(pcg(seed & MASK32) ^ SAMPLE_STREAM)


def sample_uniform(key: int, step: int) -> float:
    """The draw of `step` under `key` (sample_key(seed)): a multiple of 2**-24 in [0, 1)."""
    return (pcg((key & MASK32) ^ pcg(step & MASK32)) >> 8) * _INV_2_24
