"""federated/padding.py: f16 (and f32) tensors between the flat and the padded GPU layout."""

import numpy as np
import pytest

from pyscript_app.config import preset
from pyscript_app.federated.padding import to_flat, to_padded
from pyscript_app.gpu.layout import PaddedLayout

LAYOUT = PaddedLayout(preset("nano", vocab_size=300))


@pytest.mark.parametrize("dtype", ["<f2", "<f4"])
def test_round_trip_puts_each_tensor_at_its_padded_offset_with_zero_gaps(dtype):
    flat = np.random.default_rng(0).standard_normal(LAYOUT.flat_count).astype(dtype)
    size = np.dtype(dtype).itemsize
    padded = np.frombuffer(to_padded(LAYOUT, flat.tobytes(), size), dtype)
    assert padded.size == LAYOUT.padded_count
    mask = np.zeros(LAYOUT.padded_count, bool)
    for s in LAYOUT.slots.values():
        np.testing.assert_array_equal(padded[s.offset:s.offset + s.numel], flat[s.flat_offset:s.flat_offset + s.numel])
        mask[s.offset:s.offset + s.numel] = True
    assert not padded[~mask].any() and (~mask).any()
    assert to_flat(LAYOUT, padded.tobytes(), size) == flat.tobytes()


def test_f32_agrees_with_the_layouts_own_conversion():
    flat = np.arange(LAYOUT.flat_count, dtype=np.float32).tobytes()
    assert to_padded(LAYOUT, flat, 4) == LAYOUT.to_padded(flat)


def test_wrong_sizes_are_refused():
    with pytest.raises(ValueError, match="elements"):
        to_padded(LAYOUT, b"\0" * 2 * (LAYOUT.flat_count + 1), 2)
    with pytest.raises(ValueError, match="bytes"):
        to_flat(LAYOUT, b"\0" * 2 * (LAYOUT.padded_count - 1), 2)
