"""The relay's binary tensor frame: one header, then `count` little-endian elements.

Pure Python (struct + array, no numpy): the relay, the native worker and the browser (Pyodide)
all share this codec. Hosts with numpy can wrap the payload with np.frombuffer themselves; the
payload bytes are exactly what numpy's '<f4' / '<f2' arrays hold.

Header (28 bytes, little-endian, struct format HEADER_FORMAT):
    magic    4s   b"TGPT"
    version  u16  1
    kind     u16  1 WEIGHTS (global f32 weights), 2 DELTA (client -> relay), 3 UPDATE (relay -> all)
    dtype    u16  1 f32, 2 f16
    reserved u16  0
    round    u32  the round the tensor belongs to (WEIGHTS: the round these weights start)
    count    u32  number of elements (the model's param_count)
    tokens   u32  DELTA: tokens trained on this round; UPDATE: tokens aggregated; else 0
    loss     f32  DELTA: mean train loss this round; UPDATE: token-weighted mean; else 0
"""

from __future__ import annotations

import hashlib
import math
import struct
import sys
from array import array
from dataclasses import dataclass

MAGIC = b"TGPT"
VERSION = 1
HEADER_FORMAT = "<4sHHHHIIIf"
HEADER_SIZE = struct.calcsize(HEADER_FORMAT)  # 28

KIND_WEIGHTS, KIND_DELTA, KIND_UPDATE = 1, 2, 3
KIND_NAMES = {KIND_WEIGHTS: "weights", KIND_DELTA: "delta", KIND_UPDATE: "update"}
DTYPE_F32, DTYPE_F16 = 1, 2
DTYPE_NAMES = {DTYPE_F32: "f32", DTYPE_F16: "f16"}
DTYPE_BY_NAME = {name: code for code, name in DTYPE_NAMES.items()}
ITEMSIZE = {DTYPE_F32: 4, DTYPE_F16: 2}
U32_MAX = 0xFFFFFFFF
F16_MAX = 65504.0
_BIG_ENDIAN_HOST = sys.byteorder == "big"


class FrameError(ValueError):
    """A frame that does not parse. `reason` is the relay's reject reason ("bad_header")."""

    reason = "bad_header"


@dataclass(frozen=True)
class FrameHeader:
    kind: int
    dtype: int
    round: int
    count: int
    tokens: int = 0
    loss: float = 0.0

    @property
    def payload_size(self) -> int:
        return self.count * ITEMSIZE[self.dtype]

    @property
    def frame_size(self) -> int:
        return HEADER_SIZE + self.payload_size


def frame_size(dtype: int, count: int) -> int:
    """Exact byte length of a frame holding `count` elements of `dtype`."""
    return HEADER_SIZE + count * ITEMSIZE[dtype]


def encode_header(h: FrameHeader) -> bytes:
    if h.kind not in KIND_NAMES or h.dtype not in DTYPE_NAMES:
        raise FrameError(f"unknown kind {h.kind} or dtype {h.dtype}")
    for name in ("round", "count", "tokens"):
        value = getattr(h, name)
        if not 0 <= value <= U32_MAX:
            raise FrameError(f"{name} {value} does not fit in u32")
    return struct.pack(HEADER_FORMAT, MAGIC, VERSION, h.kind, h.dtype, 0, h.round, h.count, h.tokens, h.loss)


def decode_header(buf: bytes | bytearray | memoryview) -> FrameHeader:
    """Parse and check the 28-byte header (not the payload length; see split_frame)."""
    if len(buf) < HEADER_SIZE:
        raise FrameError(f"frame of {len(buf)} bytes is shorter than the {HEADER_SIZE}-byte header")
    magic, version, kind, dtype, reserved, rnd, count, tokens, loss = struct.unpack_from(HEADER_FORMAT, buf)
    if magic != MAGIC:
        raise FrameError("bad magic")
    if version != VERSION:
        raise FrameError(f"unsupported frame version {version}")
    if kind not in KIND_NAMES:
        raise FrameError(f"unknown frame kind {kind}")
    if dtype not in DTYPE_NAMES:
        raise FrameError(f"unknown dtype {dtype}")
    if reserved != 0:
        raise FrameError("reserved field must be 0")
    return FrameHeader(kind=kind, dtype=dtype, round=rnd, count=count, tokens=tokens, loss=loss)


def split_frame(buf: bytes | bytearray | memoryview) -> tuple[FrameHeader, memoryview]:
    """(header, payload view); the frame's length must be exactly header + count * itemsize."""
    header = decode_header(buf)
    if len(buf) != header.frame_size:
        raise FrameError(f"frame is {len(buf)} bytes, its header says {header.frame_size}")
    return header, memoryview(buf)[HEADER_SIZE:]


# --- payload codecs (pure Python) --------------------------------------------------------------


def f32_bytes(values) -> bytes:
    """Little-endian f32 bytes of a sequence of floats (or an array('f'))."""
    arr = values if isinstance(values, array) and values.typecode == "f" else array("f", values)
    if _BIG_ENDIAN_HOST:
        arr = array("f", arr)
        arr.byteswap()
    return arr.tobytes()


def f16_bytes(values) -> bytes:
    """Little-endian f16 bytes, rounding to nearest even; finite values beyond f16 range saturate
    at +-65504 (so a finite delta stays finite); NaN and Inf pass through."""
    n = len(values)
    try:
        return struct.pack(f"<{n}e", *values)
    except OverflowError:
        clamped = [max(-F16_MAX, min(F16_MAX, v)) if math.isfinite(v) else v for v in values]
        return struct.pack(f"<{n}e", *clamped)


def encode_payload(values, dtype: int) -> bytes:
    if dtype == DTYPE_F32:
        return f32_bytes(values)
    if dtype == DTYPE_F16:
        return f16_bytes(values)
    raise FrameError(f"unknown dtype {dtype}")


def decode_payload(payload: bytes | memoryview, dtype: int) -> array:
    """array('f') of the payload's values (f16 values widen exactly to f32)."""
    if dtype == DTYPE_F32:
        out = array("f")
        out.frombytes(bytes(payload))
        if _BIG_ENDIAN_HOST:
            out.byteswap()
        return out
    if dtype == DTYPE_F16:
        n = len(payload) // 2
        return array("f", struct.unpack(f"<{n}e", payload))
    raise FrameError(f"unknown dtype {dtype}")


def encode_frame(kind: int, dtype: int, values, *, round: int, tokens: int = 0, loss: float = 0.0) -> bytes:
    """A whole frame. `values` is a sequence of floats, or ready little-endian payload bytes."""
    if isinstance(values, (bytes, bytearray, memoryview)):
        payload = bytes(values)
        if len(payload) % ITEMSIZE[dtype]:
            raise FrameError("payload length is not a multiple of the element size")
        count = len(payload) // ITEMSIZE[dtype]
    else:
        payload = encode_payload(values, dtype)
        count = len(values)
    head = encode_header(FrameHeader(kind=kind, dtype=dtype, round=round, count=count, tokens=tokens, loss=loss))
    return head + payload


def decode_frame(buf: bytes | bytearray | memoryview) -> tuple[FrameHeader, array]:
    """(header, array('f') of values): the slow, numpy-free path."""
    header, payload = split_frame(buf)
    return header, decode_payload(payload, header.dtype)


def weights_sha256(f32_le_bytes: bytes | memoryview) -> str:
    """Hex sha256 of the f32 little-endian weight vector (the WEIGHTS frame's payload)."""
    return hashlib.sha256(f32_le_bytes).hexdigest()


def apply_update(weights: array, update: array) -> None:
    """weights += update in f32, in place, bit-identical to numpy's float32 add.

    Each sum is computed in f64 and then rounded to f32; for addition this double rounding always
    equals the correctly rounded f32 sum because 53 >= 2 * 24 + 2 (Figueroa, 1995)."""
    if len(weights) != len(update):
        raise FrameError(f"update has {len(update)} elements, weights have {len(weights)}")
    weights[:] = array("f", [w + u for w, u in zip(weights, update)])
