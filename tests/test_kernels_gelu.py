"""shaders/elementwise.wgsl's gelu_forward / gelu_backward against reference/ops_gpt2.py (float64).

Tolerance: atol 1e-6 + rtol 1e-5 (a few f32 roundings and one exp; the kernel computes
0.5 (1 + tanh(u)) as sigmoid(2u) from exp(-2|u|), the same function). Large |x| must not give NaN:
tanh as a quotient of exponentials would be inf / inf there, and x**3 overflows f32 past ~7e12."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.reference.ops_gpt2 import gelu_backward, gelu_forward

pytestmark = pytest.mark.gpu
EXTREMES = [0.0, -0.0, 1e-30, -1e-30, 1e-3, -1e-3, 2.7, -2.7, 5.0, -5.0, 9.0, -9.0, 10.0, -10.0, 30.0, -30.0,
            100.0, -100.0, 1e4, -1e4, 1e13, -1e13, 1e20, -1e20, 3e38, -3e38]


@pytest.mark.parametrize("n", [1, 257, 4096 + 3])
def test_gelu_forward_backward(gpu, n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    x[: min(n, len(EXTREMES))] = EXTREMES[: min(n, len(EXTREMES))]
    dy = rng.standard_normal(n).astype(np.float32)
    bx, y, dx = upload(gpu, x), empty(gpu, (n,)), empty(gpu, (n,))
    gpu.dispatch("gelu_forward", [bx, y], {"n": n})
    gpu.dispatch("gelu_backward", [upload(gpu, dy), bx, dx], {"n": n})
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        ref_y, ref_dx = gelu_forward(x64), gelu_backward(dy64, x64)
    # float64 overflows too (x**3 past 1e102): there the derivative is 1 (x > 0) or 0, y is max(x, 0)
    huge = np.abs(x64) > 1e30
    ref_y[huge], ref_dx[huge] = np.maximum(x64[huge], 0.0), np.where(x64[huge] > 0, dy64[huge], 0.0)
    got_y, got_dx = download(gpu, y, (n,)), download(gpu, dx, (n,))
    assert np.isfinite(got_y).all() and np.isfinite(got_dx).all()
    assert_close(got_y, ref_y, 1e-6, 1e-5, "gelu y")
    assert_close(got_dx, ref_dx, 1e-6, 1e-5, "gelu dx")
