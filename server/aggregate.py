"""Validation of client deltas and the outer step (numpy; float64 accumulation).

Shapes: every vector here is the flat parameter vector, (P,) with P = config.param_count.

Round r, clients k = 1..K with deltas d_k (P,) and token counts n_k:
    mean delta   d   = sum_k n_k d_k / sum_k n_k                  (float64)
    FedAvg       u   = outer_lr * d                                (outer_lr 1 by default)
    DiLoCo       m'  = mu * m + d ;  u = outer_lr * (d + mu * m')  (Nesterov; defaults lr 0.7, mu 0.5)
The update u is encoded once in the broadcast dtype (f16 by default) and the canonical weights
become W_{r+1} = W_r + decode(u) in float32, exactly what every client computes.

Speed (a `large` delta is 26.4M elements): every pass over a (P,) vector goes CHUNK elements at a
time through buffers that stay in cache and are reused, so no (P,) temporary is allocated (and
page-faulted) per submission. numpy's own float16 casts are scalar loops (~200M elements/s here),
so f16 -> f32 is a gather from a 65536-entry table and f64 -> f16 is done with exact bit
arithmetic (`_encode_f16_chunk`); both are bit-identical to numpy's casts.
DiLoCo in delta form: the outer gradient is g = -d, and this is PyTorch's SGD(nesterov=True)
with its momentum buffer negated.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from pyscript_app.federated.frames import DTYPE_F16, DTYPE_F32, HEADER_SIZE, KIND_DELTA, FrameError, FrameHeader, decode_header

from .protocol import SessionConfig

F16_MAX = float(np.finfo(np.float16).max)
NP_DTYPES = {DTYPE_F32: np.dtype("<f4"), DTYPE_F16: np.dtype("<f2")}
MAX_LOSS = 1e4
CHUNK = 1 << 15  # elements per slice: its f16, f32 and f64 buffers (448 KiB) stay in L2

# f16 bit pattern -> its exact f32 value (NaN and Inf included, so they poison the norm)
with np.errstate(invalid="ignore"):
    F16_TO_F32 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
# a fixed pseudo-random (CHUNK,) f32 vector: per-slice dot products with it fingerprint a payload
_FINGERPRINT_WEIGHTS = np.random.default_rng(0x7E57).standard_normal(CHUNK).astype(np.float32)


def decode_into(codes: np.ndarray, dtype: int, out: np.ndarray) -> np.ndarray:
    """out[:] = a slice of a payload as f32: f16 codes (uint16) through the exact table, f32 copied."""
    if dtype == DTYPE_F16:
        np.take(F16_TO_F32, codes, out=out, mode="clip")  # uint16 codes: always in range
    else:
        np.copyto(out, codes)
    return out


class Rejected(ValueError):
    """A submission that fails validation; `reason` goes into submit_reject."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Delta:
    header: FrameHeader
    values: np.ndarray | None  # (P,) float32, finite, norm-checked (the relay drops it after validation)
    digest: str  # fingerprint of the payload: spots a frame replayed by another connection
    norm: float = 0.0  # its L2 norm
    payload: memoryview | None = None  # the frame's elements as sent (header.dtype), held until the close


def parse_delta_header(frame: bytes | memoryview) -> FrameHeader:
    try:
        header = decode_header(frame)
    except FrameError as e:
        raise Rejected("bad_header", str(e)) from None
    if header.kind != KIND_DELTA:
        raise Rejected("bad_header", "clients may only send DELTA frames")
    return header


def validate_delta(frame: bytes | memoryview, config: SessionConfig, out: np.ndarray | None = None) -> Delta:
    """Checks, in order: header, element count and exact length, tokens, loss, finiteness, norm.

    The payload is decoded into `out` ((P,) float32, reused by the relay; a new array if None) in
    ONE chunked pass that also sums the squares (float64 across slices) and fingerprints it: a NaN
    or Inf makes the sum non-finite, so finiteness costs no pass of its own."""
    header = parse_delta_header(frame)
    if header.count != config.param_count:
        raise Rejected("shape_mismatch", f"delta has {header.count} elements, the model has {config.param_count}")
    if len(frame) != header.frame_size:
        raise Rejected("shape_mismatch", f"frame is {len(frame)} bytes, expected {header.frame_size}")
    if not 0 < header.tokens <= config.max_tokens:
        raise Rejected("tokens_out_of_range", f"tokens must be in [1, {config.max_tokens}]")
    if not math.isfinite(header.loss):
        raise Rejected("non_finite", "loss is not finite")
    if not 0.0 <= header.loss <= MAX_LOSS:
        raise Rejected("loss_out_of_range", f"loss must be in [0, {MAX_LOSS}]")
    values = np.empty(header.count, np.float32) if out is None else out
    norm2, digest = _decode(memoryview(frame)[HEADER_SIZE:], header.dtype, values)
    if not math.isfinite(norm2):
        if not np.isfinite(values).all():  # else: finite f32 values whose squares overflowed
            raise Rejected("non_finite", "delta has NaN or Inf values")
        norm2 = math.inf
    norm = math.sqrt(norm2)
    if norm > config.max_delta_norm:
        raise Rejected("norm_too_large", f"delta L2 norm {norm:.4g} exceeds {config.max_delta_norm:.4g}")
    return Delta(header=header, values=values, digest=digest, norm=norm, payload=memoryview(frame)[HEADER_SIZE:])


def _decode(payload: memoryview, dtype: int, values: np.ndarray) -> tuple[float, str]:
    """values[:] = payload as f32; (sum of squares, fingerprint). One pass, slice by slice.

    The fingerprint hashes each slice's dot products with itself and with a fixed random vector:
    a replayed payload gives the same bytes, hence the same BLAS results; two honest deltas
    never agree on all of them."""
    P = values.shape[0]
    src = np.frombuffer(payload, dtype="<u2" if dtype == DTYPE_F16 else "<f4")
    dots = np.empty(2 * ((P + CHUNK - 1) // CHUNK), np.float32)
    norm2 = 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        for i, lo in enumerate(range(0, P, CHUNK)):
            hi = min(P, lo + CHUNK)
            v = decode_into(src[lo:hi], dtype, values[lo:hi])
            dots[2 * i] = sq = np.dot(v, v)
            dots[2 * i + 1] = np.dot(v, _FINGERPRINT_WEIGHTS[: hi - lo])
            norm2 += float(sq)
    return norm2, hashlib.sha256(dots.tobytes()).hexdigest()


class WeightedSum:
    """Running token-weighted sums of one round: sum n_k d_k (P,) float64, sum n_k, sum n_k loss_k.

    `buffer`: a (P,) float64 array to reuse (the relay keeps one per session, so a new round does
    not page-fault 8 bytes per parameter again); it is overwritten, never read before that."""

    def __init__(self, param_count: int, buffer: np.ndarray | None = None):
        self.param_count = param_count
        self._buffer = buffer
        self.total: np.ndarray | None = None  # set by the first submission
        self._scratch = np.empty(min(CHUNK, param_count), dtype=np.float64)
        self.tokens = 0
        self.loss_tokens = 0.0

    def add(self, delta: np.ndarray, tokens: int, loss: float) -> None:
        # n * d in float64 is exact for f16-valued d and n < 2**32; the first submission writes the
        # sum directly (no zeroing pass), the others add slice by slice through a cached scratch
        n = np.float64(tokens)
        first = self.total is None
        if first:
            self.total = self._buffer if self._buffer is not None else np.empty(self.param_count, np.float64)
        for lo in range(0, self.param_count, CHUNK):
            hi = min(self.param_count, lo + CHUNK)
            if first:
                np.multiply(delta[lo:hi], n, out=self.total[lo:hi])
            else:
                scratch = self._scratch[: hi - lo]
                np.multiply(delta[lo:hi], n, out=scratch)
                np.add(self.total[lo:hi], scratch, out=self.total[lo:hi])
        self.tokens += tokens
        self.loss_tokens += tokens * loss

    def add_payload(self, payload: memoryview, dtype: int, tokens: int, loss: float, scale: float = 1.0) -> None:
        """add(decode(payload) * scale, tokens, loss), decoding slice by slice (no (P,) temporary).
        With scale 1 the sum is bit-identical to add() of the decoded values."""
        src = np.frombuffer(payload, dtype="<u2" if dtype == DTYPE_F16 else "<f4")
        factor = np.float64(tokens) * np.float64(scale)
        first = self.total is None
        if first:
            self.total = self._buffer if self._buffer is not None else np.empty(self.param_count, np.float64)
        decoded = np.empty(min(CHUNK, self.param_count), np.float32)
        for lo in range(0, self.param_count, CHUNK):
            hi = min(self.param_count, lo + CHUNK)
            v = decode_into(src[lo:hi], dtype, decoded[: hi - lo])
            if first:
                np.multiply(v, factor, out=self.total[lo:hi])
            else:
                scratch = self._scratch[: hi - lo]
                np.multiply(v, factor, out=scratch)
                np.add(self.total[lo:hi], scratch, out=self.total[lo:hi])
        self.tokens += tokens
        self.loss_tokens += tokens * loss

    def mean(self) -> np.ndarray:
        """(P,) float64 token-weighted mean delta."""
        if self.total is None or self.tokens == 0:
            raise ValueError("no submissions")
        return self.total / self.tokens

    @property
    def mean_loss(self) -> float:
        return self.loss_tokens / self.tokens if self.tokens else 0.0


@dataclass(frozen=True)
class Held:
    """A validated delta kept until its round closes (the frame's elements, not a decoded copy)."""

    client_id: str
    payload: memoryview
    dtype: int
    norm: float
    tokens: int
    loss: float


def lower_median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def round_sum(held: list[Held], param_count: int, robust: bool, buffer: np.ndarray | None = None
              ) -> tuple[WeightedSum, dict[str, int]]:
    """(the round's weighted sum, the tokens each client counted with).

    robust: each delta is scaled to at most the round's lower-median L2 norm, and each client's
    tokens are capped at the round's lower-median token count; then the token-weighted mean of
    those. With more honest deltas than forged ones, the median is an honest value: a forged delta
    weighs no more than a median honest client and moves the weights no further than one."""
    total = WeightedSum(param_count, buffer)
    clip = lower_median([h.norm for h in held]) if robust and held else math.inf
    cap = lower_median([h.tokens for h in held]) if robust and held else None
    counted: dict[str, int] = {}
    for h in held:
        tokens = h.tokens if cap is None else min(h.tokens, int(cap))
        scale = clip / h.norm if h.norm > clip else 1.0
        total.add_payload(h.payload, h.dtype, tokens, h.loss, scale)
        counted[h.client_id] = tokens
    return total, counted


def outer_update(mean_delta: np.ndarray, config: SessionConfig, momentum: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(u float64 (P,), the new momentum (P,) float32 or None for FedAvg)."""
    if config.aggregator == "fedavg":
        return config.outer_lr * mean_delta, None
    mu = config.outer_momentum
    m = mean_delta if momentum is None else mu * momentum.astype(np.float64) + mean_delta
    return config.outer_lr * (mean_delta + mu * m), m.astype(np.float32)


@dataclass
class ClosedRound:
    """What closing a round computes (off the event loop): the update and W_{r+1}."""

    payload: bytes  # the update u in the broadcast dtype, little-endian
    weights: np.ndarray  # (P,) float32: W_{r+1} = W_r + decode(u)
    momentum: np.ndarray | None  # (P,) float32 DiLoCo momentum, None for FedAvg
    weights_sha256: str


def outer_step(total: WeightedSum, weights: np.ndarray, config: SessionConfig, momentum: np.ndarray | None,
               broadcast_dtype: int) -> tuple[bytes, np.ndarray, np.ndarray | None]:
    """(update payload, W_{r+1} float32 (P,), new momentum) for one closed round.

    The same elementwise math as mean -> outer_update -> encode_update -> apply_update, one cached
    slice at a time (bit-identical to the whole-vector version)."""
    return outer_step_slices(lambda lo, hi: total.total[lo:hi], total.tokens, weights, config, momentum,
                             broadcast_dtype)


def outer_step_slices(sum_of: Callable[[int, int], np.ndarray], tokens: int, weights: np.ndarray,
                      config: SessionConfig, momentum: np.ndarray | None, broadcast_dtype: int
                      ) -> tuple[bytes, np.ndarray, np.ndarray | None]:
    """outer_step with the weighted sum given slice by slice: sum_of(lo, hi) is its (hi - lo,)
    float64 slice, used before the next call (so it may live in one reused buffer)."""
    P = weights.shape[0]
    payload = np.empty(P, dtype="<f2" if broadcast_dtype == DTYPE_F16 else "<f4")
    new_weights = np.empty(P, dtype=np.float32)
    new_momentum = None if config.aggregator == "fedavg" else np.empty(P, dtype=np.float32)
    decoded = np.empty(min(CHUNK, P), np.float32)
    for lo in range(0, P, CHUNK):
        sl = slice(lo, min(P, lo + CHUNK))
        mean = sum_of(sl.start, sl.stop) / tokens
        u, m = outer_update(mean, config, None if momentum is None else momentum[sl])
        d = decoded[: sl.stop - lo]
        _encode_chunk(u, broadcast_dtype, payload[sl], d)
        np.add(weights[sl], d, out=new_weights[sl])
        if new_momentum is not None:
            new_momentum[sl] = m
    return payload.tobytes(), new_weights, new_momentum


def close_round(total: WeightedSum, weights: np.ndarray, config: SessionConfig, momentum: np.ndarray | None,
                broadcast_dtype: int) -> ClosedRound:
    payload, new_weights, new_momentum = outer_step(total, weights, config, momentum, broadcast_dtype)
    return ClosedRound(payload, new_weights, new_momentum, weights_sha256(new_weights))


def encode_update(u: np.ndarray, broadcast_dtype: int) -> tuple[bytes, np.ndarray]:
    """(payload bytes in the broadcast dtype, the decoded float32 values every client will add).

    f16 saturates at +-65504 so a large but finite update stays finite."""
    if broadcast_dtype not in (DTYPE_F16, DTYPE_F32):
        raise ValueError(f"unknown broadcast dtype {broadcast_dtype}")
    u = np.asarray(u, dtype=np.float64)
    payload = np.empty(u.shape, "<f2" if broadcast_dtype == DTYPE_F16 else "<f4")
    decoded = np.empty(u.shape, np.float32)
    for lo in range(0, u.shape[0], CHUNK):
        sl = slice(lo, min(u.shape[0], lo + CHUNK))
        _encode_chunk(u[sl], broadcast_dtype, payload[sl], decoded[sl])
    return payload.tobytes(), decoded


def _encode_chunk(u: np.ndarray, broadcast_dtype: int, payload: np.ndarray, decoded: np.ndarray) -> None:
    """payload[:] = u in the broadcast dtype (f16 saturating); decoded[:] = its f32 value."""
    if broadcast_dtype == DTYPE_F32:
        np.copyto(decoded, u, casting="same_kind")
        payload[:] = decoded
        return
    clipped = np.clip(u, -F16_MAX, F16_MAX)
    _encode_f16_chunk(clipped, payload.view(np.uint16), decoded)


_F64_EXP_MASK = np.uint64(0x7FF0_0000_0000_0000)
_F64_SIGN_HIGH = np.uint32(0x8000_0000)
_F16_MIN_NORMAL = 2.0**-14  # below it f16's step stays 2**-24 (subnormals)
_F16_TO_MAGIC = 1.5 * 2.0**42  # 52 - 10 mantissa bits dropped when rounding f64 to f16
_F32_MIN_NORMAL_F16 = np.uint32(0x3880_0000)  # bits of 2**-14 as f32


def _encode_f16_chunk(x: np.ndarray, out_bits: np.ndarray, decoded: np.ndarray) -> None:
    """Round finite f64 values with |x| <= 65504 to f16 (nearest, ties to even), bit-identical to
    numpy's x.astype(float16) but with vectorised arithmetic instead of numpy's scalar cast.

    r = (x + M) - M with M = 1.5 * 2**42 * max(2**e, 2**-14), 2**e the binade of x: the f64
    addition rounds x to a multiple of 2**(e - 10), f16's step in that binade (2**-24 for
    subnormals), in the FPU's round-to-nearest-even. r is exact in f32 (decoded). Its f16 bits:
    normal: (f32 bits >> 13) - (112 << 10) (rebias 127 -> 15); subnormal: r * 2**24 as an integer.
    The sign comes from x, so tiny negatives round to -0 as in numpy. No step makes a subnormal
    float (those cost a microcode assist per element)."""
    m = np.bitwise_and(x.view(np.uint64), _F64_EXP_MASK).view(np.float64)  # 2**e (0 for 0)
    np.maximum(m, _F16_MIN_NORMAL, out=m)
    m *= _F16_TO_MAGIC
    r = np.add(x, m)
    np.subtract(r, m, out=r)
    np.copyto(decoded, r, casting="same_kind")
    mag_bits = decoded.view(np.uint32) & np.uint32(0x7FFF_FFFF)
    normal = (mag_bits >> np.uint32(13)) - np.uint32(112 << 10)
    with np.errstate(invalid="ignore"):
        sub = (np.abs(decoded) * np.float32(2.0**24)).astype(np.uint32)
    h = np.where(mag_bits < _F32_MIN_NORMAL_F16, sub, normal)
    sign = (x.view(np.uint32)[1::2] & _F64_SIGN_HIGH)  # high word of each f64 (little-endian)
    np.bitwise_or(h, sign >> np.uint32(16), out=h)
    np.copyto(out_bits, h, casting="unsafe")
    np.bitwise_or(decoded.view(np.uint32), sign, out=decoded.view(np.uint32))


def apply_update(weights: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """W_{r+1} = W_r + decode(u), float32 + float32 -> float32 (as every client does)."""
    return np.add(weights, decoded, dtype=np.float32)


def weights_sha256(weights: np.ndarray) -> str:
    """Hex sha256 of the f32 little-endian weight vector, hashed in place (no copy)."""
    return hashlib.sha256(np.ascontiguousarray(weights, dtype="<f4").data).hexdigest()
