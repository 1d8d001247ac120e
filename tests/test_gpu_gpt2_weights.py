"""gpu/gpt2_weights.py: the weights' type by the request and the device's features, which tensors are
narrowed, and the writer's chunks of whole rows: the layout it leaves on the
GPU for any chunk size is the one gpu/gpt2_model.py reads (transposed Conv1D weights, wte as it is)."""

import numpy as np
import pytest

from _gpu import download, gpu  # noqa: F401
from pyscript_app.gpu.gpt2_weights import (ROW_MATRICES, WeightDtypeError, WeightWriter, choose_weight_dtype, gpu_nbytes,
                                           stored_narrow)
from pyscript_app.reference.gpt2_config import GPT2Config

CFG = GPT2Config(n_layer=1, n_embd=8, n_head=2, n_positions=6, vocab_size=37, vocab_multiple=8)


def test_the_type_follows_the_devices_features():
    assert choose_weight_dtype("auto", {"shader-f16", "subgroups"}) == "f16"
    assert choose_weight_dtype("auto", set()) == "f32"
    assert choose_weight_dtype("f32", {"shader-f16"}) == "f32"
    assert choose_weight_dtype("f16", set()) == "f16"  # core WGSL: any device stores f16 weights
    with pytest.raises(WeightDtypeError):
        choose_weight_dtype("bf16", {"shader-f16"})


def test_products_and_wte_are_narrowed_the_rest_stays_f32():
    narrow = {name for name, _ in CFG.param_shapes() if stored_narrow(name)}
    assert narrow == {"wte.weight", "h.0.attn.c_attn.weight", "h.0.attn.c_proj.weight", "h.0.mlp.c_fc.weight",
                      "h.0.mlp.c_proj.weight"}
    assert gpu_nbytes("wte.weight", (40, 8), "f16") == 640 and gpu_nbytes("wpe.weight", (6, 8), "f16") == 192


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["f32", "f16"])
@pytest.mark.parametrize("chunk_bytes", [4, 100, 1 << 20])  # one row (f16 products: a pair), a few, everything
def test_any_chunking_leaves_the_layout_the_decoder_reads(gpu, dtype, chunk_bytes):
    rng = np.random.default_rng(3)
    tensors = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in CFG.param_shapes()}
    writer = WeightWriter(gpu, CFG, dtype, chunk_bytes=chunk_bytes)
    for name, t in tensors.items():
        writer.write(name, t)
    weights = writer.finish()
    wtype = np.float16 if dtype == "f16" else np.float32
    for name, t in tensors.items():
        want = t.T if name.endswith(ROW_MATRICES) else t
        if stored_narrow(name):
            want = want.astype(wtype)
        got = download(gpu, weights[name], want.shape, want.dtype)
        assert np.array_equal(got, want), name
    assert weights.dtype == dtype
    weights.release(gpu)
