"""uniforms.packer: the compiled packer of a per-step uniform gives pack's bytes (pure Python)."""

from __future__ import annotations

import pytest

from pyscript_app.gpu import registry, uniforms


@pytest.mark.parametrize("kernel, values", [
    ("adamw_step", registry.adamw_values(1000, 7, 3e-4, 0.9, 0.95, 1e-8, 0.1, 1.0)),
    ("mean_into_slot", {"n": 128, "slot": 31}),
    ("attention_decode", {"C": 64, "H": 4, "Tmax": 32, "pos": 5}),
])
def test_packer_gives_the_bytes_of_pack(kernel, values):
    fields = registry.get(kernel).uniform
    assert uniforms.packer(fields)(values) == uniforms.pack(fields, values)


def test_packer_takes_scalar_fields_only():
    with pytest.raises(ValueError, match="scalar"):
        uniforms.packer((("a", "u32"), ("v", "vec4<f32>")))
