"""matvec.wgsl (f32 weights) and matvec_f16.wgsl (f16 weights, f32 arithmetic) on the GPU against
reference/ops_gpt2.py (float64) with the weights the GPU stores (rounded to f16 for the _f16 entries):
out = x @ w[:M].T, y = x @ w[:M].T + b, gelu(...), res + (...), with w stored as rows (rows M.. NaN: never
read), for one row (decoding) and a few (the prompt), at awkward M, with every override shape (a single lane
per row without the tree, lanes past the row's vec4s); accumulate adds into the output; the GELU epilogue
bit-identical to elementwise.wgsl's gelu_forward. The pack kernels' layouts and f16 rounding exactly, and
embedding_forward_f16 against embedding_forward on the widened table.

The _f16 entries are core WGSL (two f16 per u32): every device runs them.
Tolerances: atol 1e-5 + rtol 1e-4 (tests/test_kernels_matmul.py's)."""

import numpy as np
import pytest

from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.gpu.matmul_rules import matvec_rows_overrides
from pyscript_app.reference.ops_gpt2 import gelu_forward, layernorm_forward, linear_forward

pytestmark = pytest.mark.gpu
ATOL, RTOL = 1e-5, 1e-4
ENTRIES = ("matvec_rows", "matvec_rows_bias", "matvec_rows_bias_gelu", "matvec_rows_bias_residual")
OVERRIDES = [None, {"WG": 64, "LANES": 16}, {"WG": 256, "LANES": 1}, {"WG": 32, "LANES": 32}]
DTYPES = {"f32": ("", np.float32), "f16": ("_f16", np.float16)}


def _run(gpu, kernel, x, wrows, b, res, over, prior=None, dtype=np.float32):
    N, M = x.shape[0], b.shape[0]
    y = upload(gpu, prior) if prior is not None else empty(gpu, (N, M))
    bound = [upload(gpu, x), upload(gpu, wrows, dtype)]
    bound += [] if kernel.startswith("matvec_rows_f16") or kernel == "matvec_rows" else [upload(gpu, b)]
    bound += [upload(gpu, res)] if "residual" in kernel else []
    gpu.dispatch(kernel, bound + [y], {"N": N, "K": x.shape[1], "M": M, "accumulate": int(prior is not None)},
                 overrides=over)
    return download(gpu, y, (N, M))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("over", OVERRIDES, ids=lambda o: "default" if o is None else "-".join(map(str, o.values())))
@pytest.mark.parametrize("N,K,M", [(1, 4, 1), (1, 132, 203), (3, 72, 33)])
def test_rows_entries_match_reference(gpu, N, K, M, over, dtype):
    suffix, wtype = DTYPES[dtype]
    rng = np.random.default_rng(N * 1000 + K + M)
    x = (0.5 * rng.standard_normal((N, K))).astype(np.float32)
    w = (rng.standard_normal((K, M)) / np.sqrt(K)).astype(wtype).astype(np.float32)  # the stored values
    wrows = np.concatenate([w.T, np.full((3, K), np.nan, np.float32)])  # rows M.. never read
    b, res = rng.standard_normal(M).astype(np.float32), rng.standard_normal((N, M)).astype(np.float32)
    prior = rng.standard_normal((N, M)).astype(np.float32)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    lin = linear_forward(x64, w64, b.astype(np.float64))
    refs = {"matvec_rows": x64 @ w64, "matvec_rows_bias": lin, "matvec_rows_bias_gelu": gelu_forward(lin),
            "matvec_rows_bias_residual": res.astype(np.float64) + lin}
    for entry in ENTRIES:
        kernel = entry + suffix
        assert_close(_run(gpu, kernel, x, wrows, b, res, over, dtype=wtype), refs[entry], ATOL, RTOL, kernel)
        assert_close(_run(gpu, kernel, x, wrows, b, res, over, prior, wtype), prior + refs[entry], ATOL, RTOL,
                     kernel + " acc")


def test_gelu_epilogue_is_elementwise_gelu(gpu):
    """With x = (1, 0, 0, 0) the pre-activation is exactly w[:, 0] + b, so the epilogue's GELU must give
    gelu_forward's bits for every value, the overflow edges included."""
    t = np.array([0.0, 1e-30, -1e-30, 0.3, -0.7, 2.7, -2.7, 9.0, -9.0, 30.0, -30.0, 1e4, -1e4, 1e13, -1e13,
                  3e38, -3e38], np.float32)
    t = np.concatenate([t, np.random.default_rng(5).standard_normal(100).astype(np.float32) * 3])
    M = t.size
    wrows = np.zeros((M, 4), np.float32)
    wrows[:, 0] = t
    y = _run(gpu, "matvec_rows_bias_gelu", np.array([[1, 0, 0, 0]], np.float32), wrows, np.zeros(M, np.float32),
             None, None)
    ref = empty(gpu, (M,))
    gpu.dispatch("gelu_forward", [upload(gpu, t), ref], {"n": M})
    assert np.array_equal(y[0].view(np.uint32), download(gpu, ref, (M,)).view(np.uint32))


@pytest.mark.parametrize("kernel", ["pack_rows_transposed", "pack_rows_transposed_f16", "pack_rows_f16"])
def test_pack_kernels_place_and_round_each_value(gpu, kernel):
    """Chunks of rows of src (K,M) land transposed (dst (M,K)) or in place, as f32 or f16 rounded to nearest
    even (numpy's astype; two f16 per u32 as little-endian f16 bytes lie), chunk by chunk at their row0 (f16
    transposed: chunks of whole row pairs)."""
    wtype = np.float16 if kernel.endswith("_f16") else np.float32
    K, M = 38, 22
    src = (np.random.default_rng(7).standard_normal((K, M)) * 3).astype(np.float32)
    src[0, :3] = [65504.0, 1e-7, -2.5e-8]  # f16's largest, a subnormal, a value that rounds to -0
    dst = empty(gpu, (K * M,), wtype)
    for row0, rows in ((0, 16), (16, 16), (32, 6)):
        gpu.dispatch(kernel, [upload(gpu, src[row0:row0 + rows]), dst],
                     {"n": rows * M, "M": M, "K": K, "row0": row0})
    got = download(gpu, dst, (K * M,), wtype)
    want = (src.T if "transposed" in kernel else src).astype(wtype).reshape(-1)
    assert np.array_equal(got.view(np.uint16 if wtype is np.float16 else np.uint32),
                          want.view(np.uint16 if wtype is np.float16 else np.uint32))


def test_embedding_f16_is_embedding_of_the_widened_table(gpu):
    B, T, C, V, Tmax = 2, 5, 12, 40, 8
    rng = np.random.default_rng(9)
    wte = rng.standard_normal((V, C)).astype(np.float16)
    wpe = rng.standard_normal((Tmax, C)).astype(np.float32)
    idx = rng.integers(0, V + 3, size=(B, T)).astype(np.uint32)  # past V: clamped to V - 1
    dims = {"B": B, "T": T, "C": C, "V": V, "Tmax": Tmax}
    got, ref = empty(gpu, (B, T, C)), empty(gpu, (B, T, C))
    gpu.dispatch("embedding_forward_f16", [upload(gpu, idx, np.uint32), upload(gpu, wte, np.float16),
                                           upload(gpu, wpe), got], dims)
    gpu.dispatch("embedding_forward", [upload(gpu, idx, np.uint32), upload(gpu, wte.astype(np.float32)),
                                       upload(gpu, wpe), ref], dims)
    assert np.array_equal(download(gpu, got, (B, T, C)), download(gpu, ref, (B, T, C)))


def test_overrides_rule_gives_valid_shapes():
    for info in ({"adapter_type": "DiscreteGPU"}, {"adapter_type": "CPU"}, None):
        o = matvec_rows_overrides(info)
        assert o["WG"] % o["LANES"] == 0 and o["LANES"] & (o["LANES"] - 1) == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_prompts_rows_have_the_bits_of_one_row_at_a_time(gpu, dtype):
    """Rows done four at a time (a prompt: N = 6, one block of 4 and one of 2) give each row the bits it
    gets alone (N = 1, decoding): the prefill and the decode steps agree exactly."""
    suffix, wtype = DTYPES[dtype]
    rng = np.random.default_rng(11)
    N, K, M = 6, 72, 45
    x = rng.standard_normal((N, K)).astype(np.float32)
    wrows = (rng.standard_normal((M, K)) / np.sqrt(K)).astype(wtype)
    b, res = rng.standard_normal(M).astype(np.float32), rng.standard_normal((N, M)).astype(np.float32)
    over = {"WG": 64, "LANES": 16}
    whole = _run(gpu, "matvec_rows_bias_residual" + suffix, x, wrows, b, res, over, dtype=wtype)
    for n in range(N):
        one = _run(gpu, "matvec_rows_bias_residual" + suffix, x[n:n + 1], wrows, b, res[n:n + 1], over, dtype=wtype)
        assert np.array_equal(one[0].view(np.uint32), whole[n].view(np.uint32)), n


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("over", OVERRIDES, ids=lambda o: "default" if o is None else "-".join(map(str, o.values())))
@pytest.mark.parametrize("N,K,M", [(1, 132, 203), (6, 72, 33)])
def test_layernorm_folded_into_the_products_matches_reference(gpu, N, K, M, over, dtype):
    """matvec_rows_ln_bias*: layernorm(x) @ w[:M].T + b (GELU) against reference/ops_gpt2's layernorm_forward then
    the product; x with |mean| >> std in one row (the variance must come from centred values)."""
    suffix, wtype = DTYPES[dtype]
    rng = np.random.default_rng(N * 100 + K + M)
    x = rng.standard_normal((N, K)).astype(np.float32)
    x[0] += 20.0
    g, beta = (1 + 0.2 * rng.standard_normal(K)).astype(np.float32), (0.2 * rng.standard_normal(K)).astype(np.float32)
    w = (rng.standard_normal((K, M)) / np.sqrt(K)).astype(wtype).astype(np.float32)
    wrows = np.concatenate([w.T, np.full((3, K), np.nan, np.float32)])
    b = rng.standard_normal(M).astype(np.float32)
    xn, _, _ = layernorm_forward(x.astype(np.float64), g.astype(np.float64), beta.astype(np.float64), 1e-5)
    lin = xn @ w.astype(np.float64)
    refs = {"matvec_rows_ln_bias": lin + b, "matvec_rows_ln_bias_gelu": gelu_forward(lin + b)}
    for entry, ref in refs.items():
        out = empty(gpu, (N, M))
        bound = [upload(gpu, x), upload(gpu, g), upload(gpu, beta), upload(gpu, wrows, wtype), upload(gpu, b)]
        gpu.dispatch(entry + suffix, bound + [out], {"N": N, "K": K, "M": M, "eps": 1e-5}, overrides=over)
        assert_close(download(gpu, out, (N, M)), ref, ATOL, RTOL, entry + suffix)
