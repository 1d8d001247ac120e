"""matvec.wgsl's one-row linear layers on the GPU against reference/ops_gpt2.py (float64): y = x @ w + b,
gelu(x @ w + b), res + (x @ w + b) for N = 1 (decoding) and a few rows, at awkward K and M, with every
override shape (k-groups, columns per lane, a single k-group without the tree); accumulate adds into y;
the GELU epilogue bit-identical to elementwise.wgsl's gelu_forward of the same pre-activation.

Tolerances: atol 1e-5 + rtol 1e-4 (tests/test_kernels_matmul.py's)."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.gpu.matmul_rules import matvec_forward_overrides
from pyscript_app.reference.ops_gpt2 import gelu_forward, linear_forward

pytestmark = pytest.mark.gpu
ATOL, RTOL = 1e-5, 1e-4
ENTRIES = ("matvec_forward_bias", "matvec_forward_bias_gelu", "matvec_forward_bias_residual")
OVERRIDES = [None, {"WG": 256, "KSPLIT": 32}, {"WG": 64, "KSPLIT": 1, "COLS": 3}, {"WG": 32, "KSPLIT": 4, "COLS": 4}]


def _run(gpu, kernel, x, w, b, res, over, prior=None):
    N, M = x.shape[0], w.shape[1]
    y = upload(gpu, prior) if prior is not None else empty(gpu, (N, M))
    inputs = [x, w, b, res] if kernel.endswith("residual") else [x, w, b]
    dims = {"N": N, "K": x.shape[1], "M": M, "accumulate": int(prior is not None)}
    gpu.dispatch(kernel, [upload(gpu, a) for a in inputs] + [y], dims, overrides=over)
    return download(gpu, y, (N, M))


@pytest.mark.parametrize("over", OVERRIDES, ids=lambda o: "default" if o is None else "-".join(map(str, o.values())))
@pytest.mark.parametrize("N,K,M", [(1, 1, 1), (1, 131, 203), (2, 70, 33)])
def test_forward_entries_match_reference(gpu, N, K, M, over):
    rng = np.random.default_rng(N * 1000 + K + M)
    x, w = (0.5 * rng.standard_normal((N, K))).astype(np.float32), rng.standard_normal((K, M)).astype(np.float32)
    w /= np.sqrt(K)  # pre-activations of order 1: the GELU's curved part
    b, res = rng.standard_normal(M).astype(np.float32), rng.standard_normal((N, M)).astype(np.float32)
    prior = rng.standard_normal((N, M)).astype(np.float32)
    lin = linear_forward(*(a.astype(np.float64) for a in (x, w, b)))
    refs = {"matvec_forward_bias": lin, "matvec_forward_bias_gelu": gelu_forward(lin),
            "matvec_forward_bias_residual": res.astype(np.float64) + lin}
    for kernel in ENTRIES:
        assert_close(_run(gpu, kernel, x, w, b, res, over), refs[kernel], ATOL, RTOL, kernel)
        assert_close(_run(gpu, kernel, x, w, b, res, over, prior), prior + refs[kernel], ATOL, RTOL, kernel + " acc")


def test_gelu_epilogue_is_elementwise_gelu(gpu):
    """With K = 1 and x = 1 the pre-activation is exactly w + b, so the epilogue's GELU must give
    gelu_forward's bits for every value, the overflow edges included."""
    t = np.array([0.0, 1e-30, -1e-30, 0.3, -0.7, 2.7, -2.7, 9.0, -9.0, 30.0, -30.0, 1e4, -1e4, 1e13, -1e13,
                  3e38, -3e38], np.float32)
    t = np.concatenate([t, np.random.default_rng(5).standard_normal(100).astype(np.float32) * 3])
    M = t.size
    y = _run(gpu, "matvec_forward_bias_gelu", np.ones((1, 1), np.float32), t[None, :], np.zeros(M, np.float32),
             None, None)
    ref = empty(gpu, (M,))
    gpu.dispatch("gelu_forward", [upload(gpu, t), ref], {"n": M})
    assert np.array_equal(y[0].view(np.uint32), download(gpu, ref, (M,)).view(np.uint32))


def test_overrides_rule_gives_valid_shapes():
    for info in ({"adapter_type": "DiscreteGPU"}, {"adapter_type": "CPU"}, None):
        for K, M in ((768, 2304), (3072, 768), (64, 64), (5, 3)):
            o = matvec_forward_overrides(K, M, info)
            assert o["WG"] % o["KSPLIT"] == 0 and 1 <= o["COLS"] <= 4
