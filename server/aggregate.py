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
    values = np.frombuffer(payload, dtype=NP_DTYPES[header.dtype]).astype(np.float32)
    if not np.isfinite(values).all():
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
        self.tokens = 0
        self.loss_tokens = 0.0

    def add(self, delta: np.ndarray, tokens: int, loss: float) -> None:
        if self.total is None:
            self.total = np.zeros(self.param_count, dtype=np.float64)
        self.total += np.float64(tokens) * delta  # delta is upcast to float64 before the multiply
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
