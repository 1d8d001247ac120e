"""gpu/layout.py: the padded GPU layout of the flat parameter vector (pure Python, no GPU)."""

import numpy as np
import pytest

from pyscript_app.config import ModelConfig, preset
from pyscript_app.gpu.layout import ALIGN, PaddedLayout
from pyscript_app.reference.adamw import decay_mask

CONFIGS = [preset("nano"), preset("tiny"), ModelConfig(n_layer=2, n_embd=20, n_head=4, block_size=7, vocab_size=37)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"C{c.n_embd}V{c.vocab_size}")
def test_every_tensor_starts_256_byte_aligned_in_flat_order(cfg):
    lay = PaddedLayout(cfg)
    end = 0
    for (name, shape), slot in zip(cfg.param_shapes(), lay.slots.values()):
        assert slot.name == name and slot.shape == shape
        assert slot.offset % ALIGN == 0 and slot.offset >= end
        assert lay.byte_range(name) == (slot.offset * 4, slot.numel * 4)
        assert lay.byte_range(name)[0] % 256 == 0
        end = slot.offset + slot.numel
    assert lay.flat_count == cfg.param_count
    assert end <= lay.padded_count < end + ALIGN


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"C{c.n_embd}V{c.vocab_size}")
def test_round_trip_and_zero_padding(cfg):
    lay = PaddedLayout(cfg)
    flat = np.random.default_rng(0).standard_normal(cfg.param_count).astype(np.float32) + 5.0  # no zeros
    padded = np.frombuffer(lay.to_padded(flat.tobytes()), np.float32)
    assert padded.size == lay.padded_count
    inside = np.zeros(lay.padded_count, bool)
    for name, (off, shape) in cfg.param_offsets().items():
        s = lay.slots[name]
        np.testing.assert_array_equal(padded[s.offset : s.offset + s.numel], flat[off : off + s.numel])
        inside[s.offset : s.offset + s.numel] = True
    assert (padded[~inside] == 0).all()
    assert lay.to_flat(padded.tobytes()) == flat.tobytes()


def test_decay_mask_matches_reference_after_unpadding():
    cfg = CONFIGS[2]
    lay = PaddedLayout(cfg)
    mask = np.frombuffer(lay.decay_mask(), np.float32)
    assert mask.size == lay.padded_count
    np.testing.assert_array_equal(np.frombuffer(lay.to_flat(lay.decay_mask()), np.float32), decay_mask(cfg))
    assert mask.sum() == decay_mask(cfg).sum()  # the gaps are not decayed


def test_wrong_sizes_are_rejected():
    lay = PaddedLayout(CONFIGS[0])
    with pytest.raises(ValueError):
        lay.to_padded(b"\0" * 4 * (lay.flat_count - 1))
    with pytest.raises(ValueError):
        lay.to_flat(b"\0" * 4 * (lay.padded_count - 1))
