"""shaders/embedding.wgsl against reference embedding_forward / embedding_backward.

Tolerance: forward exact (one f32 addition); backward atol 1e-6 + rtol 1e-5 (sums over repeated
tokens / over B in a possibly different order than np.add.at)."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.reference.ops import embedding_backward, embedding_forward

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("B,T,Tmax,C,V", [(1, 1, 1, 1, 3), (1, 7, 16, 16, 1024), (3, 5, 8, 65, 11), (4, 32, 32, 64, 1024)])
def test_embedding_forward_backward(gpu, B, T, Tmax, C, V):
    rng = np.random.default_rng(B * 100 + T)
    idx = rng.integers(0, min(V, 9), size=(B, T))  # few distinct tokens: many repeats to sum
    idx[0, 0] = V - 1
    wte = rng.standard_normal((V, C)).astype(np.float32)
    wpe = rng.standard_normal((Tmax, C)).astype(np.float32)
    dx = rng.standard_normal((B, T, C)).astype(np.float32)
    dims = {"B": B, "T": T, "C": C, "V": V, "Tmax": Tmax}
    bidx = upload(gpu, idx, np.uint32)
    x, dwte, dwpe = empty(gpu, (B, T, C)), empty(gpu, (V, C)), empty(gpu, (Tmax, C))
    gpu.dispatch("embedding_forward", [bidx, upload(gpu, wte), upload(gpu, wpe), x], dims)
    bdx = upload(gpu, dx)
    gpu.dispatch("embedding_backward_dwte", [bidx, bdx, dwte], dims)
    gpu.dispatch("embedding_backward_dwpe", [bdx, dwpe], dims)
    ref_dwte, ref_dwpe = embedding_backward(idx, dx.astype(np.float64), V, Tmax)
    assert_close(download(gpu, x, (B, T, C)), embedding_forward(idx, wte, wpe), 0, 0, "x")
    assert_close(download(gpu, dwte, (V, C)), ref_dwte, 1e-6, 1e-5, "dwte")
    assert_close(download(gpu, dwpe, (Tmax, C)), ref_dwpe, 1e-6, 1e-5, "dwpe")


@pytest.mark.parametrize("B,T,C,V", [(1, 1, 1, 3), (3, 5, 65, 11), (4, 32, 64, 1024), (2, 9, 16, 1024)])
def test_dwte_rows_entry_equals_the_scan_entry_bit_for_bit(gpu, B, T, C, V):
    """The rows entry (caller zeroes dwte) sums in the same position order as the per-vocab-row scan."""
    rng = np.random.default_rng(7 * B + T)
    idx = rng.integers(0, min(V, 6), size=(B, T))
    dx = rng.standard_normal((B, T, C)).astype(np.float32)
    dims = {"B": B, "T": T, "C": C, "V": V, "Tmax": T}
    bidx, bdx = upload(gpu, idx, np.uint32), upload(gpu, dx)
    scan, rows = empty(gpu, (V, C)), empty(gpu, (V, C), fill=0.0)
    gpu.dispatch("embedding_backward_dwte", [bidx, bdx, scan], dims)
    gpu.dispatch("embedding_backward_dwte_rows", [bidx, bdx, rows], dims)
    got, want = download(gpu, rows, (V, C)), download(gpu, scan, (V, C))
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    ref, _ = embedding_backward(idx, dx.astype(np.float64), V, T)
    assert_close(got, ref, 1e-6, 1e-5, "dwte rows")


@pytest.mark.parametrize("WG", [64, 40, 256, 7])
def test_dwte_scan_any_workgroup_size_over_several_chunks(gpu, WG):
    """The scan entry's match bitmask (WG / 32 words, rounded up) over chunks of WG positions: N not
    a multiple of WG, repeated tokens in and across chunks, columns past C in the last block."""
    B, T, C, V = 3, 70, 45, 50
    rng = np.random.default_rng(WG)
    idx = rng.integers(0, V, size=(B, T))
    idx[:, ::5] = 7  # a frequent token
    dx = rng.standard_normal((B, T, C)).astype(np.float32)
    dims = {"B": B, "T": T, "C": C, "V": V, "Tmax": T}
    dwte = empty(gpu, (V, C))
    gpu.dispatch("embedding_backward_dwte", [upload(gpu, idx, np.uint32), upload(gpu, dx), dwte], dims,
                 overrides={"WG": WG})
    ref_dwte, _ = embedding_backward(idx, dx.astype(np.float64), V, T)
    assert_close(download(gpu, dwte, (V, C)), ref_dwte, 1e-6, 1e-5, "dwte")
