"""shaders/init.wgsl against reference/init.py: bit for bit (compared as uint32)."""

import numpy as np
import pytest

from _gpu import download, empty, gpu  # noqa: F401
from pyscript_app import rng
from pyscript_app.config import preset
from pyscript_app.reference.init import init_constant, init_params, init_std, init_tensor

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("seed,tensor_index,n,std", [
    (0, 0, 1, 0.02), (1337, 3, 1000, 0.125), (0xFFFFFFFF, 7, 4097, 1.0), (42, 12, 65, 0.1 / 8),
])
def test_init_normal_bit_exact(gpu, seed, tensor_index, n, std):
    out = empty(gpu, (n + 5,))
    gpu.dispatch("init_normal", [out], {"n": n, "offset": 5, "key": rng.tensor_key(seed, tensor_index),
                                        "scale": rng.init_scale(std)})
    got = download(gpu, out, (n + 5,))
    ref = init_tensor(seed, tensor_index, n, std)
    assert np.isnan(got[:5]).all(), "elements before offset must stay untouched"
    np.testing.assert_array_equal(got[5:].view(np.uint32), ref.view(np.uint32))


def test_whole_model_init_bit_exact(gpu):
    """init_normal / fill per tensor of the nano preset reproduce init_params exactly."""
    cfg = preset("nano")
    seed = 7
    out = empty(gpu, (cfg.param_count,))
    off = 0
    for index, (name, shape) in enumerate(cfg.param_shapes()):
        n = int(np.prod(shape))
        std = init_std(name, shape)
        if std:
            params = {"n": n, "offset": off, "key": rng.tensor_key(seed, index), "scale": rng.init_scale(std)}
            gpu.dispatch("init_normal", [out], params)
        else:
            gpu.dispatch("fill", [out], {"n": n, "offset": off, "key": 0, "scale": init_constant(name)})
        off += n
    got = download(gpu, out, (cfg.param_count,))
    np.testing.assert_array_equal(got.view(np.uint32), init_params(cfg, seed).view(np.uint32))
