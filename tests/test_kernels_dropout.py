"""shaders/dropout.wgsl against reference/dropout.py.

Tolerances: the mask bit for bit (x = 1 gives exactly scale or 0); dropout's values exact (one f32
multiply); dropout_add's values exact as well (one multiply, a select, one addition: no fused
multiply-add can form across the select)."""

import struct

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app import rng
from pyscript_app.reference.dropout import dropout_forward, dropout_mask

pytestmark = pytest.mark.gpu


def _keys_buffer(ex, seed, step, n_layer):
    keys = rng.dropout_keys(seed, step, n_layer)
    return ex.upload(struct.pack(f"<{len(keys)}I", *keys)), keys


def _values(n, site, p):
    return {"n": n, "site": site, "threshold": rng.dropout_threshold(p), "scale": rng.dropout_scale(p)}


@pytest.mark.parametrize("n,site,p", [(1, 0, 0.5), (255, 2, 0.1), (257, 4, 0.9), (3 * 4096 + 5, 3, 0.2)])
def test_mask_is_bit_identical_to_the_reference(gpu, n, site, p):
    keys_buf, keys = _keys_buffer(gpu, seed=n, step=7, n_layer=2)
    y = empty(gpu, (n,))
    gpu.dispatch("dropout", [upload(gpu, np.ones(n)), keys_buf, y], _values(n, site, p))
    keep = dropout_mask(keys[site], n, rng.dropout_threshold(p))
    got = download(gpu, y, (n,))
    np.testing.assert_array_equal(got != 0, keep)
    assert np.all(got[keep] == np.float32(rng.dropout_scale(p)))


@pytest.mark.parametrize("n", [1, 1000, 64 * 257 + 1])
def test_dropout_and_dropout_add_values(gpu, n):
    r = np.random.default_rng(n)
    x, res = r.standard_normal(n).astype(np.float32), r.standard_normal(n).astype(np.float32)
    keys_buf, keys = _keys_buffer(gpu, seed=3, step=n, n_layer=1)
    p, site = 0.3, 1
    y, z = empty(gpu, (n,)), empty(gpu, (n,))
    bx = upload(gpu, x)
    gpu.dispatch("dropout", [bx, keys_buf, y], _values(n, site, p))
    gpu.dispatch("dropout_add", [bx, keys_buf, upload(gpu, res), z], _values(n, site, p))
    ref = dropout_forward(x, dropout_mask(keys[site], n, rng.dropout_threshold(p)), rng.dropout_scale(p))
    assert_close(download(gpu, y, (n,)), ref, 0, 0, "dropout")
    assert_close(download(gpu, z, (n,)), res + ref, 0, 0, "dropout_add")


def test_zero_rate_keeps_everything_unscaled(gpu):
    n = 513
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    keys_buf, _ = _keys_buffer(gpu, seed=1, step=1, n_layer=1)
    y = empty(gpu, (n,))
    gpu.dispatch("dropout", [upload(gpu, x), keys_buf, y], _values(n, 0, 0.0))
    np.testing.assert_array_equal(download(gpu, y, (n,)), x)
