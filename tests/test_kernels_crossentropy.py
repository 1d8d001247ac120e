"""shaders/crossentropy.wgsl against reference crossentropy_forward_backward (float64 reference).

Tolerances: losses atol 1e-5 + rtol 1e-5; dlogits atol 1e-7 + rtol 1e-4 (entries are ~1/(N*V))."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.reference.ops import crossentropy_forward_backward

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("N,V,scale", [(1, 1, 1.0), (7, 3, 1.0), (33, 1024, 2.0), (5, 1000, 40.0), (3, 257, 1e3)])
def test_crossentropy_forward_backward(gpu, N, V, scale):
    rng = np.random.default_rng(N * 31 + V)
    logits = (rng.standard_normal((N, V)) * scale).astype(np.float32)  # large scales: overflow guard
    targets = rng.integers(0, V, size=N)
    dims = {"N": N, "V": V}
    bl, bt = upload(gpu, logits), upload(gpu, targets, np.uint32)
    losses, dlogits, eval_losses = empty(gpu, (N,)), empty(gpu, (N, V)), empty(gpu, (N,))
    gpu.dispatch("crossentropy_forward_backward", [bl, bt, losses, dlogits], dims)
    gpu.dispatch("crossentropy_forward", [bl, bt, eval_losses], dims)
    ref_losses, ref_dlogits = crossentropy_forward_backward(logits.astype(np.float64), targets)
    assert_close(download(gpu, losses, (N,)), ref_losses, 1e-5, 1e-5, "losses")
    assert_close(download(gpu, eval_losses, (N,)), ref_losses, 1e-5, 1e-5, "losses (forward only)")
    assert_close(download(gpu, dlogits, (N, V)), ref_dlogits, 1e-7, 1e-4, "dlogits")
