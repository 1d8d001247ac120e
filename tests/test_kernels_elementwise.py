"""shaders/elementwise.wgsl against reference relu_forward / relu_backward and numpy addition.

Tolerance: exact (atol 0, rtol 0): max, select and one f32 addition round identically everywhere."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.reference.ops import relu_backward, relu_forward

pytestmark = pytest.mark.gpu


def _data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float32)
    x[::7] = 0.0  # the derivative at exactly 0 is taken as 0
    return x, rng.standard_normal(n).astype(np.float32)


@pytest.mark.parametrize("n", [1, 255, 257, 4096 + 3])
def test_relu_forward_backward(gpu, n):
    x, dy = _data(n, n)
    bx, bdy = upload(gpu, x), upload(gpu, dy)
    y, dx = empty(gpu, (n,)), empty(gpu, (n,))
    gpu.dispatch("relu_forward", [bx, y], {"n": n})
    gpu.dispatch("relu_backward", [bdy, bx, dx], {"n": n})
    assert_close(download(gpu, y, (n,)), relu_forward(x), 0, 0, "relu y")
    assert_close(download(gpu, dx, (n,)), relu_backward(dy, x), 0, 0, "relu dx")


@pytest.mark.parametrize("n", [1, 1000])
def test_add_and_add_inplace(gpu, n):
    a, b = _data(n, 3 * n)
    ba, bb, y = upload(gpu, a), upload(gpu, b), empty(gpu, (n,))
    gpu.dispatch("add", [ba, bb, y], {"n": n})
    gpu.dispatch("add_inplace", [ba, bb], {"n": n})  # recorded after add: add still saw the old a
    gpu.dispatch("add_inplace", [ba, bb], {"n": n})
    assert_close(download(gpu, y, (n,)), a + b, 0, 0, "a + b")
    assert_close(download(gpu, ba, (n,)), (a + b) + b, 0, 0, "a += b twice")


def test_large_1d_grid_folds_into_two_dimensions(gpu):
    """More than 65535 workgroups of 256: the grid folds into (x, y) and every element is covered."""
    n = 65535 * 256 + 300
    x = np.arange(n, dtype=np.float32) - n / 2
    y = empty(gpu, (n,))
    gpu.dispatch("relu_forward", [upload(gpu, x), y], {"n": n})
    np.testing.assert_array_equal(download(gpu, y, (n,)), np.maximum(x, 0))
