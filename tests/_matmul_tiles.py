"""Tile override sets shared by the matmul kernel tests."""

# The k loop's variants (overrides STAGES, KSLICE; registry.matmul_pipeline): one tile buffer with
# 16-deep slices at 128 x 128 (what GPUs run), and one buffer of the default depth at 64 x 64.
SINGLE_128 = {"TM": 128, "TN": 128, "KSLICE": 16, "STAGES": 1}
SINGLE_64 = {"TM": 64, "TN": 64, "STAGES": 1}


def tile_id(t):
    """A test id for a tiles dict: 128x128, or 128x128-k16s1 for the k loop variants."""
    if t is None:
        return "default"
    extra = (f"-k{t['KSLICE']}" if "KSLICE" in t else "") + (f"s{t['STAGES']}" if "STAGES" in t else "")
    return f"{t['TM']}x{t['TN']}" + (extra and "-" + extra.lstrip("-"))
