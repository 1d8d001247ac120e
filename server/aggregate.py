"""Validation of client deltas and the outer step (numpy; float64 accumulation).

Shapes: every vector here is the flat parameter vector, (P,) with P = config.param_count.

Round r, clients k = 1..K with deltas d_k (P,) and token counts n_k:
    mean delta   d   = sum_k n_k d_k / sum_k n_k                  (float64)
    FedAvg       u   = outer_lr * d                                (outer_lr 1 by default)
    DiLoCo       m'  = mu * m + d ;  u = outer_lr * (d + mu * m')  (Nesterov; lr 0.7, mu 0.9)
The update u is encoded once in the broadcast dtype (f16 by default) and the canonical weights
become W_{r+1} = W_r + decode(u) in float32, exactly what every client computes.
DiLoCo in delta form: the outer gradient is g = -d, and this is PyTorch's SGD(nesterov=True)
with its momentum buffer negated.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from pyscript_app.frames import DTYPE_F16, DTYPE_F32, KIND_DELTA, FrameError, FrameHeader, decode_header

from .protocol import SessionConfig

F16_MAX = float(np.finfo(np.float16).max)
NP_DTYPES = {DTYPE_F32: np.dtype("<f4"), DTYPE_F16: np.dtype("<f2")}
MAX_LOSS = 1e4


class Rejected(ValueError):
    """A submission that fails validation; `reason` goes into submit_reject."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Delta:
    header: FrameHeader
    values: np.ndarray  # (P,) float32, finite, norm-checked
    digest: str  # sha256 of the payload bytes: spots a frame replayed by another connection


def parse_delta_header(frame: bytes | memoryview) -> FrameHeader:
    try:
        header = decode_header(frame)
    except FrameError as e:
        raise Rejected("bad_header", str(e)) from None
    if header.kind != KIND_DELTA:
        raise Rejected("bad_header", "clients may only send DELTA frames")
    return header


def validate_delta(frame: bytes | memoryview, config: SessionConfig) -> Delta:
    """Checks, in order: header, element count and exact length, tokens, loss, finiteness, norm."""
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
    payload = memoryview(frame)[len(frame) - header.payload_size :]
    if header.dtype == DTYPE_F16:  # all-ones exponent = Inf/NaN; integer test is faster than isfinite
        if (np.frombuffer(payload, dtype="<u2") & 0x7C00 == 0x7C00).any():
            raise Rejected("non_finite", "delta has NaN or Inf values")
    values = np.frombuffer(payload, dtype=NP_DTYPES[header.dtype]).astype(np.float32)
    if header.dtype == DTYPE_F32 and not np.isfinite(values).all():
        raise Rejected("non_finite", "delta has NaN or Inf values")
    norm = float(np.sqrt(np.dot(values, values)))  # f32 BLAS dot; an overflow to inf is rejected too
    if norm > config.max_delta_norm:
        raise Rejected("norm_too_large", f"delta L2 norm {norm:.4g} exceeds {config.max_delta_norm:.4g}")
    return Delta(header=header, values=values, digest=hashlib.sha256(payload).hexdigest())


class WeightedSum:
    """Running token-weighted sums of one round: sum n_k d_k (P,) float64, sum n_k, sum n_k loss_k."""

    def __init__(self, param_count: int):
        self.param_count = param_count
        self.total: np.ndarray | None = None  # allocated on the first submission
        self._scratch: np.ndarray | None = None
        self.tokens = 0
        self.loss_tokens = 0.0

    def add(self, delta: np.ndarray, tokens: int, loss: float) -> None:
        if self.total is None:
            self.total = np.zeros(self.param_count, dtype=np.float64)
            self._scratch = np.empty(self.param_count, dtype=np.float64)
        # n * d in float64 (exact for f16-valued d and n < 2**32), then the running sum; one reused
        # scratch buffer instead of a fresh (P,) float64 temporary per submission
        np.multiply(delta, np.float64(tokens), out=self._scratch)
        np.add(self.total, self._scratch, out=self.total)
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


def outer_update(mean_delta: np.ndarray, config: SessionConfig, momentum: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(u float64 (P,), the new momentum (P,) float32 or None for FedAvg)."""
    if config.aggregator == "fedavg":
        return config.outer_lr * mean_delta, None
    mu = config.outer_momentum
    m = mean_delta if momentum is None else mu * momentum.astype(np.float64) + mean_delta
    return config.outer_lr * (mean_delta + mu * m), m.astype(np.float32)


CHUNK = 1 << 20  # elements per slice of the outer step: 8 MiB of float64 stays in cache


def outer_step(total: WeightedSum, weights: np.ndarray, config: SessionConfig, momentum: np.ndarray | None,
               broadcast_dtype: int) -> tuple[bytes, np.ndarray, np.ndarray | None]:
    """(update payload, W_{r+1} float32 (P,), new momentum) for one closed round.

    The same elementwise math as mean -> outer_update -> encode_update -> apply_update, done one
    cache-sized slice at a time (bit-identical to the whole-vector version)."""
    P = weights.shape[0]
    payload = np.empty(P, dtype="<f2" if broadcast_dtype == DTYPE_F16 else "<f4")
    new_weights = np.empty(P, dtype=np.float32)
    new_momentum = None if config.aggregator == "fedavg" else np.empty(P, dtype=np.float32)
    for lo in range(0, P, CHUNK):
        sl = slice(lo, min(P, lo + CHUNK))
        mean = total.total[sl] / total.tokens
        u, m = outer_update(mean, config, None if momentum is None else momentum[sl])
        encoded, decoded = encode_update(u, broadcast_dtype)
        payload[sl] = np.frombuffer(encoded, dtype=payload.dtype)
        new_weights[sl] = apply_update(weights[sl], decoded)
        if new_momentum is not None:
            new_momentum[sl] = m
    return payload.tobytes(), new_weights, new_momentum


def encode_update(u: np.ndarray, broadcast_dtype: int) -> tuple[bytes, np.ndarray]:
    """(payload bytes in the broadcast dtype, the decoded float32 values every client will add).

    f16 saturates at +-65504 so a large but finite update stays finite."""
    if broadcast_dtype == DTYPE_F16:
        encoded = np.clip(u, -F16_MAX, F16_MAX).astype("<f2")
    elif broadcast_dtype == DTYPE_F32:
        encoded = u.astype("<f4")
    else:
        raise ValueError(f"unknown broadcast dtype {broadcast_dtype}")
    return encoded.tobytes(), encoded.astype(np.float32)


def apply_update(weights: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """W_{r+1} = W_r + decode(u), float32 + float32 -> float32 (as every client does)."""
    return np.add(weights, decoded, dtype=np.float32)


def weights_sha256(weights: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(weights, dtype="<f4").tobytes()).hexdigest()
