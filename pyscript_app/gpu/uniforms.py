"""Pack a kernel's uniform struct into bytes with `struct`, following WGSL's uniform layout rules.

Pure Python: the browser host packs the same bytes (no numpy there).

Fields are (name, type) pairs in declaration order, types from SIZE_ALIGN below. WGSL places each
member at the next multiple of its alignment and rounds the struct size up to its largest
alignment; we additionally round up to 16 bytes because uniform buffer bindings are used as
whole structs and 16 is the uniform address space's struct alignment.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

# WGSL type -> (struct format of ONE scalar, component count, size bytes, align bytes)
SIZE_ALIGN: dict[str, tuple[str, int, int, int]] = {
    "u32": ("I", 1, 4, 4),
    "i32": ("i", 1, 4, 4),
    "f32": ("f", 1, 4, 4),
    "vec2<u32>": ("I", 2, 8, 8),
    "vec2<f32>": ("f", 2, 8, 8),
    "vec4<u32>": ("I", 4, 16, 16),
    "vec4<f32>": ("f", 4, 16, 16),
}

Fields = Sequence[tuple[str, str]]


def layout(fields: Fields) -> tuple[list[tuple[str, str, int]], int]:
    """[(name, type, byte offset)], total size in bytes (a multiple of 16)."""
    out, offset, max_align = [], 0, 16
    for name, typ in fields:
        if typ not in SIZE_ALIGN:
            raise ValueError(f"uniform field {name!r}: unsupported type {typ!r}")
        _, _, size, align = SIZE_ALIGN[typ]
        offset = -(-offset // align) * align
        out.append((name, typ, offset))
        offset += size
        max_align = max(max_align, align)
    return out, -(-offset // max_align) * max_align if offset else max_align


def struct_size(fields: Fields) -> int:
    return layout(fields)[1]


def pack(fields: Fields, values: Mapping[str, object]) -> bytes:
    """The little-endian bytes of the struct; every field must be given, no unknown names.

    u32 fields accept bools and non-negative ints; f32 fields are rounded to float32 by struct."""
    names = {n for n, _ in fields}
    missing = [n for n in names if n not in values]
    unknown = [n for n in values if n not in names]
    if missing or unknown:
        raise KeyError(f"uniform values: missing {sorted(missing)}, unknown {sorted(unknown)}")
    items, size = layout(fields)
    buf = bytearray(size)
    for name, typ, offset in items:
        fmt, count, _, _ = SIZE_ALIGN[typ]
        v = values[name]
        comps = list(v) if count > 1 else [v]  # type: ignore[arg-type]
        if len(comps) != count:
            raise ValueError(f"uniform field {name!r} of type {typ} needs {count} components")
        if fmt in "Ii":
            comps = [int(c) for c in comps]
        struct.pack_into("<" + fmt * count, buf, offset, *comps)
    return bytes(buf)


def packer(fields: Fields):
    """pack(fields, values) as one compiled struct.Struct for structs of scalars (a step's per-step
    uniforms are packed every step): values -> the same bytes pack gives, without its checks."""
    items, size = layout(fields)
    fmt, at = "<", 0
    for _, typ, offset in items:
        code, count, nbytes, _ = SIZE_ALIGN[typ]
        if count != 1:
            raise ValueError(f"packer takes scalar fields only, not {typ}")
        fmt += "x" * (offset - at) + code
        at = offset + nbytes
    compiled = struct.Struct(fmt + "x" * (size - at))
    names = [name for name, _, _ in items]
    ints = [typ != "f32" for _, typ, _ in items]

    def pack_values(values: Mapping[str, object]) -> bytes:
        return compiled.pack(*[int(values[n]) if i else values[n] for n, i in zip(names, ints)])

    return pack_values
