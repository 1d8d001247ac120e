"""The padded GPU layout of the flat parameter vector (params, grads and AdamW moments alike).

Pure Python, no numpy (runs in Pyodide). Why padded: a kernel binds one tensor as a range of the
big parameter buffer, and WebGPU storage bindings must start at a multiple of 256 bytes. So on the
GPU every tensor of config.ModelConfig.param_shapes() starts at a multiple of ALIGN = 64 floats,
in the same order as the flat layout, with zeros in the gaps:

    flat:    | wte (V*C) | wpe (T*C) | h0.ln1 (C) | h0.qkv (C*3C) | ...
    padded:  | wte (V*C) 0.. | wpe (T*C) 0.. | h0.ln1 (C) 0.. | h0.qkv ... |     each start % 64 == 0

The padding is inert: its gradient is never written (stays 0), its decay is 0, so AdamW keeps it 0
and it adds nothing to the gradient norm. Conversion to and from the flat float32 bytes (checkpoints,
the numpy backend, the relay) is by slicing: one bytes copy per tensor, no per-element Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ModelConfig

ALIGN = 64  # floats: 256 bytes, WebGPU's minStorageBufferOffsetAlignment
F32 = 4  # bytes per float


@dataclass(frozen=True)
class TensorSlot:
    name: str
    shape: tuple[int, ...]
    flat_offset: int  # element offset in the flat vector
    offset: int  # element offset in the padded GPU buffer (a multiple of ALIGN)
    numel: int


class PaddedLayout:
    """Where each parameter tensor lives in the padded GPU buffers, and flat <-> padded bytes."""

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg
        self.slots: dict[str, TensorSlot] = {}
        flat = padded = 0
        for name, shape in cfg.param_shapes():
            n = 1
            for s in shape:
                n *= s
            self.slots[name] = TensorSlot(name, tuple(shape), flat, padded, n)
            flat += n
            padded += -(-n // ALIGN) * ALIGN
        self.flat_count = flat  # == cfg.param_count
        self.padded_count = padded  # floats in each GPU param / grad / m / v buffer

    @property
    def padded_nbytes(self) -> int:
        return self.padded_count * F32

    def byte_range(self, name: str) -> tuple[int, int]:
        """(byte offset, byte size) of a tensor in the padded buffer (the offset is 256-aligned)."""
        s = self.slots[name]
        return s.offset * F32, s.numel * F32

    def to_padded(self, flat: bytes) -> bytes:
        """Flat float32 bytes (P floats) -> padded bytes (padded_count floats, zero gaps)."""
        mv = memoryview(flat).cast("B")
        if len(mv) != self.flat_count * F32:
            raise ValueError(f"flat vector has {len(mv) // F32} floats, this model has {self.flat_count}")
        parts, end = [], 0
        for s in self.slots.values():
            parts.append(b"\0" * ((s.offset - end) * F32))
            parts.append(mv[s.flat_offset * F32 : (s.flat_offset + s.numel) * F32])
            end = s.offset + s.numel
        parts.append(b"\0" * ((self.padded_count - end) * F32))
        return b"".join(parts)

    def to_flat(self, padded: bytes) -> bytes:
        """Padded bytes -> flat float32 bytes (the gaps are dropped)."""
        mv = memoryview(padded).cast("B")
        if len(mv) < self.padded_count * F32:
            raise ValueError(f"padded buffer has {len(mv)} bytes, expected {self.padded_nbytes}")
        return b"".join(mv[s.offset * F32 : (s.offset + s.numel) * F32] for s in self.slots.values())

    def decay_mask(self) -> bytes:
        """Padded float32 bytes: 1.0 for elements of 2-D tensors (decayed), 0.0 for gains and gaps
        (the rule of reference/adamw.py decay_mask)."""
        one, zero = b"\x00\x00\x80\x3f", b"\0" * F32  # 1.0f, 0.0f little-endian
        parts, end = [], 0
        for s in self.slots.values():
            parts.append(zero * (s.offset - end))
            parts.append((one if len(s.shape) == 2 else zero) * s.numel)
            end = s.offset + s.numel
        parts.append(zero * (self.padded_count - end))
        return b"".join(parts)
