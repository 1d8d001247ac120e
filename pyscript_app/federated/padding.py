"""Tensors of any element size between the flat layout (frames, the relay) and the padded GPU layout.

gpu/layout.PaddedLayout converts f32 bytes; a federated client also moves f16 tensors (the delta it
sends, the update it receives: 2 bytes per element). Same slots, any `itemsize`, by slicing (one
bytes copy per tensor). Every padded tensor start is a multiple of ALIGN = 64 elements, so f16 pairs
never straddle two tensors: element 2i and 2i+1 of a packed u32 belong to the same tensor or a gap.
Pure Python (runs in Pyodide).
"""

from __future__ import annotations

from ..gpu.layout import PaddedLayout


def to_padded(layout: PaddedLayout, flat, itemsize: int) -> bytes:
    """Flat bytes (P elements of `itemsize`) -> padded bytes (padded_count elements, zero gaps)."""
    mv = memoryview(flat).cast("B")
    if len(mv) != layout.flat_count * itemsize:
        raise ValueError(f"flat tensor has {len(mv) // itemsize} elements, this model has {layout.flat_count}")
    parts, end = [], 0
    for s in layout.slots.values():
        parts.append(b"\0" * ((s.offset - end) * itemsize))
        parts.append(mv[s.flat_offset * itemsize : (s.flat_offset + s.numel) * itemsize])
        end = s.offset + s.numel
    parts.append(b"\0" * ((layout.padded_count - end) * itemsize))
    return b"".join(parts)


def to_flat(layout: PaddedLayout, padded, itemsize: int) -> bytes:
    """Padded bytes -> flat bytes (the gaps are dropped)."""
    mv = memoryview(padded).cast("B")
    if len(mv) < layout.padded_count * itemsize:
        raise ValueError(f"padded tensor has {len(mv)} bytes, expected {layout.padded_count * itemsize}")
    return b"".join(mv[s.offset * itemsize : (s.offset + s.numel) * itemsize] for s in layout.slots.values())
