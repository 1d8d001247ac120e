"""gpu/materialized_attention.py: the dispatches it records, replayed in numpy by the kernels' own
headers (shaders/matmul_coop.wgsl's STRIDED form and CAUSAL modes, matmul_heads.wgsl's, and
attention_softmax.wgsl), equal the numpy statements: reference/mixed.py's attention pair for the
matrix units' products, reference/ops_attention.py's for the f32 ones. Memory nothing has written is
NaN, so a product that read a score a skipped block never wrote, or a k-slice its CAUSAL mode leaves
out that is not zero, fails here.

The kernels themselves are checked elsewhere: attention_softmax.wgsl and matmul_heads.wgsl on this
machine's adapter (their parity cases, test_kernels_attention_softmax.py), matmul_coop.wgsl compiled
by Tint (test_kernels_matmul_coop.py) and run on a GPU with subgroup matrices by tabgpt bench's gate."""

import math

import numpy as np
import pytest

from pyscript_app.config import ModelConfig
from pyscript_app.gpu import materialized_attention
from pyscript_app.gpu.materialized_attention import MaterializedAttentionOps, materialized_attention_ok
from pyscript_app.gpu.layout import PaddedLayout
from pyscript_app.gpu.model_ops import ModelOps
from pyscript_app.gpu import parity_runner
from pyscript_app.gpu.executor import as_view, run_sync
from pyscript_app.gpu.parity_cases import CASES, build_bundle
from pyscript_app.playground.pipeline_plan import PlanningExecutor
from pyscript_app.reference import ops_attention
from pyscript_app.reference.mixed import attention_backward_mixed, attention_forward_mixed, to_f16


class _Memory(PlanningExecutor):
    """The planning executor on a mixed-precision device, with a float32 array per buffer (NaN until
    written) and each dispatch replayed by its kernel's header."""

    def __init__(self):
        super().__init__()
        self.coop_ok = True
        self.adapter_info = {"adapter_type": "DiscreteGPU"}
        self.max_workgroup_bytes = 49152
        self.mem = {}
        self.kernels = []

    def array(self, t, fill=np.nan) -> tuple[np.ndarray, int]:
        v = as_view(t)
        key = id(v.buffer)
        if key not in self.mem:
            self.mem[key] = np.full(v.buffer.nbytes // 4, fill, np.float32)
        return self.mem[key], v.offset // 4

    def put(self, t, values: np.ndarray) -> None:
        arr, off = self.array(t)
        arr[off:off + values.size] = values.reshape(-1)

    def get(self, t, shape) -> np.ndarray:
        arr, off = self.array(t)
        return arr[off:off + math.prod(shape)].reshape(shape).copy()

    def write(self, t, data, offset: int = 0) -> None:
        arr, off = self.array(t)
        values = np.frombuffer(bytes(data), np.float32)
        arr[off + offset // 4:off + offset // 4 + values.size] = values

    async def read(self, t, nbytes: int, offset: int = 0) -> bytes:
        arr, off = self.array(t)
        return arr[off + offset // 4:off + (offset + nbytes) // 4].tobytes()

    def dispatch(self, kernel, buffers, params, *, overrides=None, shape=None):
        super().dispatch(kernel, buffers, params, overrides=overrides, shape=shape)
        self.kernels.append(kernel)
        getattr(self, "_" + kernel)(buffers, params, overrides or {})

    def _attention_softmax_forward(self, bufs, v, o):
        s, soff = self.array(bufs[0])
        lse, loff = self.array(bufs[1])
        T, rows = v["T"], v["rows"]
        S = s[soff:soff + rows * T].reshape(rows, T)
        keep = np.arange(T)[None, :] <= (np.arange(rows) % T)[:, None]
        m = np.where(keep, S, -np.inf).max(1, keepdims=True)
        e = np.where(keep, np.exp(np.where(keep, S, 0) - m), 0)
        l = e.sum(1, keepdims=True)
        s[soff:soff + rows * T] = (e / l).reshape(-1)
        lse[loff:loff + rows] = (m + np.log(l))[:, 0]

    def _attention_softmax_backward(self, bufs, v, o):
        (s, soff), (dp, doff), (lse, loff) = (self.array(b) for b in bufs[:3])
        T, rows = v["T"], v["rows"]
        keep = np.arange(T)[None, :] <= (np.arange(rows) % T)[:, None]
        S, dP = s[soff:soff + rows * T].reshape(rows, T), dp[doff:doff + rows * T].reshape(rows, T)
        P = np.where(keep, np.exp(np.where(keep, S, 0) - lse[loff:loff + rows, None]), 0)
        dP0 = np.where(keep, dP, 0)
        dp[doff:doff + rows * T] = (P * (dP0 - (P * dP0).sum(1, keepdims=True))).reshape(-1)
        s[soff:soff + rows * T] = P.reshape(-1)

    def _matmul_coop(self, bufs, v, o):
        assert o["EPI"] == 0 and o["KSPLIT"] == 1 and o["STRIDED"] == 1  # else the kernel ignores the strides
        self._batched(bufs[0], bufs[1], bufs[3], v, o, o["WY"] * o["RT"] * 16, o["WX"] * o["CT"] * 16, o["BK"], to_f16)

    def _matmul_heads(self, bufs, v, o):
        self._batched(bufs[0], bufs[1], bufs[2], v, o, 64, 64, 16, lambda x: x)

    def _batched(self, a_buf, b_buf, y_buf, v, o, BM, BN, BK, rounded):
        """The STRIDED products' header: per batch and per BM x BN block, the CAUSAL mode's k-slices."""
        N, K, M = v["N"], v["K"], v["M"]
        (a, aoff), (b, boff), (y, yoff) = self.array(a_buf), self.array(b_buf), self.array(y_buf)

        def take(arr, start, ld, rows, cols):
            idx = start + np.arange(rows)[:, None] * ld + np.arange(cols)[None, :]
            return arr[idx]

        for z in range(v["batches"]):
            bb, hh = divmod(z, v["heads"])
            at = aoff + v["a_base"] + bb * v["a_bs"] + hh * v["a_hs"]
            bt = boff + v["b_base"] + bb * v["b_bs"] + hh * v["b_hs"]
            yt = yoff + v["y_base"] + bb * v["y_bs"] + hh * v["y_hs"]
            A = take(a, at, v["lda"], K, N).T if o["A_T"] else take(a, at, v["lda"], N, K)
            B = take(b, bt, v["ldb"], M, K).T if o["B_T"] else take(b, bt, v["ldb"], K, M)
            A16, B16 = rounded(A * np.float32(v["a_scale"])), rounded(B * np.float32(v["b_scale"]))
            for r0 in range(0, N, BM):
                for c0 in range(0, M, BN):
                    if o["CAUSAL"] == 1 and c0 >= r0 + BM:
                        continue
                    lo, hi = 0, -(-K // BK)
                    if o["CAUSAL"] == 2:
                        hi = min(hi, -(-(r0 + BM) // BK))
                    if o["CAUSAL"] == 3:
                        lo = min(r0 // BK, hi)
                    ks = slice(lo * BK, min(hi * BK, K))
                    blk = (A16[r0:r0 + BM, ks] @ B16[ks, c0:c0 + BN]) * np.float32(v["out_scale"])
                    rows, cols = blk.shape
                    idx = yt + (r0 + np.arange(rows))[:, None] * v["ldy"] + (c0 + np.arange(cols))[None, :]
                    y[idx] = blk


@pytest.mark.parametrize("products", ["coop", "f32"])
@pytest.mark.parametrize("B,T,C,H", [(2, 64, 64, 2), (1, 68, 48, 3), (3, 20, 32, 4), (1, 132, 32, 1)])
def test_the_recorded_products_and_softmax_equal_the_numpy_statement(B, T, C, H, products):
    ex = _Memory()
    r = np.random.default_rng(T)
    qkv = r.standard_normal((B, T, 3 * C)).astype(np.float32)
    dy = (1e-3 * r.standard_normal((B, T, C))).astype(np.float32)
    g = 1024.0 if products == "coop" else 1.0
    att = MaterializedAttentionOps(ex, B, T, C, H, g, products)
    bq, bdy = ex.alloc(qkv.nbytes), ex.alloc(dy.nbytes)
    ex.put(bq, qkv), ex.put(bdy, dy)
    y, lse, dqkv = ex.alloc(B * T * C * 4), ex.alloc(B * H * T * 4), ex.alloc(qkv.nbytes)
    att.forward(bq, y, lse)
    att.backward(bdy, bq, y, lse, dqkv)
    mm = "matmul_coop" if products == "coop" else "matmul_heads"
    assert ex.kernels == [mm, "attention_softmax_forward", mm, mm, mm, "attention_softmax_backward", mm, mm, mm]
    if products == "coop":
        ref_y, ref_lse = attention_forward_mixed(qkv, H)
        ref_d = attention_backward_mixed(dy, qkv, ref_y, ref_lse, H, g)
    else:
        ref_y, ref_lse = ops_attention.attention_forward(qkv, H)
        ref_d = ops_attention.attention_backward(dy, qkv, ref_y, ref_lse, H)
    # f16(P) may round to the other neighbour where the scores' sums ran in another order (the parity
    # case's allowance, parity_cases_coop._attention_coop); f32 products keep the f32 allowance
    y_tol = (1e-3, 1e-3 * np.abs(ref_y).max()) if products == "coop" else (1e-4, 1e-5)
    np.testing.assert_allclose(ex.get(y, (B, T, C)), ref_y, rtol=y_tol[0], atol=y_tol[1])
    np.testing.assert_allclose(ex.get(lse, (B, H, T)), ref_lse, rtol=1e-5, atol=1e-5)
    got = ex.get(dqkv, (B, T, 3 * C))
    np.testing.assert_allclose(got, ref_d, rtol=1e-3, atol=1e-3 * np.abs(ref_d).max())


def test_it_stands_in_only_where_the_scores_fit_and_rows_are_whole_vec4():
    ex = _Memory()
    ok = materialized_attention_ok
    assert ok(ex, 8, 256, 512, 8) and ok(ex, 8, 256, 512, 8, "f32")
    assert not ok(ex, 8, 254, 512, 8)  # score rows of whole vec4
    assert not ok(ex, 8, 256, 24, 4)   # head width 6
    ex.max_binding_bytes = 8 * 8 * 256 * 256 * 4 - 4
    assert not ok(ex, 8, 256, 512, 8, "f32")  # the scores past one binding
    ex.coop_ok = False
    assert not ok(ex, 1, 4, 8, 2) and ok(ex, 1, 4, 8, 2, "f32")  # f32 products need no matrix units
    with pytest.raises(ValueError, match="matrix units"):
        MaterializedAttentionOps(ex, 1, 4, 8, 2, 1.0)
    with pytest.raises(ValueError, match="unknown products"):
        MaterializedAttentionOps(ex, 1, 4, 8, 2, 1.0, "bf16")


@pytest.mark.parametrize("coop,f32", [(True, False), (False, True), (False, False)])
def test_each_step_takes_its_kind_only_when_enabled(monkeypatch, coop, f32):
    monkeypatch.setattr(materialized_attention, "ENABLED", {"coop": coop, "f32": f32})
    monkeypatch.setattr(materialized_attention, "MIN_CONTEXT", 8)
    cfg = ModelConfig(n_layer=2, n_embd=16, n_head=2, block_size=8, vocab_size=40)
    ex, layout = _Memory(), PaddedLayout(cfg)
    blocks = object()  # the caller's AttentionOps
    mixed = ModelOps(ex, layout, 2, 8, attention=blocks, precision="mixed")
    assert mixed.coop_attention is coop and (mixed.attn is blocks) is not coop
    if coop:
        assert mixed.attn.products == "coop" and mixed.attn.g == mixed.grad_scale
    fp32 = ModelOps(ex, layout, 2, 8, attention=blocks)
    assert (fp32.attn is blocks) is not f32 and not fp32.coop_attention
    if f32:
        assert fp32.attn.products == "f32" and fp32.attn.g == 1.0
        ex.adapter_info = {"adapter_type": "CPU"}  # CPU adapters keep the rows kernels
        assert ModelOps(ex, layout, 2, 8, attention=blocks).attn is blocks
    monkeypatch.setattr(materialized_attention, "MIN_CONTEXT", 12)  # shorter contexts keep the blocks kernels
    assert ModelOps(ex, layout, 2, 8, attention=blocks, precision="mixed").attn is blocks


def test_its_parity_cases_pass_on_the_kernels_headers():
    """The cases tabgpt bench's gate runs on a GPU (parity_cases_coop._attention_coop, _attention_heads)
    are consistent: on the headers' arithmetic they pass."""
    names = [c.name for c in CASES if c.name.startswith(("attention_coop", "attention_heads"))]
    bundle = build_bundle([c for c in CASES if c.name in names], workgroup_bytes=None, coop=True)
    assert [m["name"] for m in bundle.index["cases"]] == names and names
    for meta in bundle.index["cases"]:
        result = run_sync(parity_runner.run_case(_Memory(), meta, bundle.blobs[meta["file"]]))
        assert result.passed, result.describe()


def test_the_mixed_gate_runs_one_step_on_the_materialised_attention_and_one_on_the_blocks_kernels():
    from pyscript_app.gpu import mixed_check
    ex = _Memory()
    short, long = mixed_check.CHECK_MODEL, mixed_check.CHECK_LONG_MODEL
    kinds = []
    for cfg, B in ((short, mixed_check.CHECK_BATCH), (long, mixed_check.CHECK_LONG_BATCH)):
        ops = ModelOps(ex, PaddedLayout(cfg), B, cfg.block_size, attention=object(), precision="mixed")
        kinds.append(ops.coop_attention)
    assert kinds == [False, True]  # under the defaults: ENABLED["coop"], MIN_CONTEXT
