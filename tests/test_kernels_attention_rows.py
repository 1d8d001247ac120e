"""shaders/attention_rows_backward.wgsl against reference attention_backward (float64 reference).

The backward's inputs y and lse come from attention.wgsl's attention_forward (checked against the
reference in test_kernels_attention.py), so only the backward is under test there; one test runs
the rows pair (attention_rows_forward, then the backward), one compiles the shader under Dawn's
Tint with WebGPU's default limits (16 KiB of workgroup memory), one times it (a sanity check).
Tolerances as test_kernels_attention.py: dqkv atol 2e-5 + rtol 2e-4 (sums of T products of
recomputed probabilities). Inputs: qkv ~ N(0, 1.5^2) so the softmax is far from uniform; dy ~ N(0, 1).
dqkv is pre-filled with NaN: every element must be written.
Shapes cover one token, T not a multiple of the tiles (5, 13, 33, 70, 97), D = 4 .. 64 (D/4 odd,
uneven column splits at D = 44, 60), H = 1 .. 8, B = 1 .. 3, and the large model's attention."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from _require import module_available, require
from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.gpu.attention_ops import rows_forward_overrides, tile_rows
from pyscript_app.reference.ops_attention import attention_backward, attention_forward

pytestmark = pytest.mark.gpu
BWD_ATOL, BWD_RTOL = 2e-5, 2e-4
FWD_ATOL, FWD_RTOL = 1e-5, 1e-4  # the forward/backward pair test: y, and lse below
LSE_ATOL, LSE_RTOL = 1e-5, 1e-5

# (B, T, C, H)
BACKWARD_SHAPES = [(1, 1, 16, 4), (2, 5, 16, 4), (1, 13, 64, 4), (1, 9, 16, 1), (3, 33, 64, 2),
                   (2, 32, 128, 4), (1, 64, 256, 8), (2, 70, 128, 2), (1, 97, 256, 4), (2, 33, 384, 6)]


def _world(B, T, C, seed):
    rng = np.random.default_rng(seed)
    qkv = (rng.standard_normal((B, T, 3 * C)) * 1.5).astype(np.float32)
    dy = rng.standard_normal((B, T, C)).astype(np.float32)
    return qkv, dy


def _inputs(gpu, qkv, dy, H):
    """Buffers of dy, qkv and attention_forward's y, lse (dispatched here), and the dims."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    D = C // H
    dims = {"B": B, "T": T, "C": C, "H": H}
    bqkv, bdy = upload(gpu, qkv), upload(gpu, dy)
    y, lse = empty(gpu, (B, T, C)), empty(gpu, (B, H, T))
    gpu.dispatch("attention_forward", [bqkv, y, lse], dims, overrides={"D": D, "BQ": tile_rows(D)})
    return bdy, bqkv, y, lse, dims


def _run_backward(gpu, qkv, dy, H, **over):
    """attention_rows_backward (overrides D + `over`) -> dqkv as numpy, from a NaN-filled dqkv."""
    bdy, bqkv, y, lse, dims = _inputs(gpu, qkv, dy, H)
    dqkv = upload(gpu, np.full(qkv.shape, np.nan, np.float32))  # every element must be overwritten
    gpu.dispatch("attention_rows_backward", [bdy, bqkv, y, lse, dqkv], dims,
                 overrides={"D": qkv.shape[2] // 3 // H, **over})
    return download(gpu, dqkv, qkv.shape)


def _check_backward(gpu, B, T, C, H, seed, **over):
    qkv, dy = _world(B, T, C, seed)
    dqkv = _run_backward(gpu, qkv, dy, H, **over)
    qkv64, dy64 = qkv.astype(np.float64), dy.astype(np.float64)
    ref_y, ref_lse = attention_forward(qkv64, H)
    ref_dqkv = attention_backward(dy64, qkv64, ref_y, ref_lse, H)
    for name, cols in (("dq", slice(0, C)), ("dk", slice(C, 2 * C)), ("dv", slice(2 * C, 3 * C))):
        assert_close(dqkv[..., cols], ref_dqkv[..., cols], BWD_ATOL, BWD_RTOL, name)


@pytest.mark.parametrize("B,T,C,H", BACKWARD_SHAPES)
def test_attention_rows_backward_matches_reference(gpu, B, T, C, H):
    _check_backward(gpu, B, T, C, H, seed=B * 1000 + T * 10 + C + H)


@pytest.mark.parametrize("D", [4, 8, 12, 16, 20, 32, 44, 60, 64])
def test_attention_rows_backward_any_head_width(gpu, D):
    # D = 12, 20, 44, 60: D/4 odd or not a multiple of the 8-column parts (44, 60 split unevenly)
    _check_backward(gpu, 2, 11, 2 * D, 2, seed=D * 7)


@pytest.mark.parametrize("ROWS,KT,QT", [(32, 16, 8), (32, 8, 16), (16, 4, 3), (64, 1, 1), (25, 5, 3)])
def test_attention_rows_backward_any_tiles(gpu, ROWS, KT, QT):
    # T = 45 spans several tiles of every kind and ends inside one; D = 64 splits key rows in 2
    # (ROWS = 25: 12 keys of 2 parts and one idle invocation in the dk/dv workgroups)
    _check_backward(gpu, 1, 45, 128, 2, seed=ROWS + KT + QT, ROWS=ROWS, KT=KT, QT=QT)


def test_attention_rows_backward_large_model_shape(gpu):
    """The large model's attention (B=2 of its 8, T=256, C=512, H=8: D=64) matches the reference."""
    _check_backward(gpu, 2, 256, 512, 8, seed=5)


def test_attention_rows_backward_equals_attention_backward_closely(gpu):
    """The rows backward and the column-per-invocation backward agree far inside the reference
    tolerance (a cross-check that needs no float64 reference: 1e-5 absolute)."""
    B, T, C, H = 2, 40, 256, 4
    D = C // H
    qkv, dy = _world(B, T, C, seed=3)
    bdy, bqkv, y, lse, dims = _inputs(gpu, qkv, dy, H)
    a, b = empty(gpu, qkv.shape), empty(gpu, qkv.shape)
    gpu.dispatch("attention_backward", [bdy, bqkv, y, lse, a], dims, overrides={"D": D, "BQ": tile_rows(D)})
    gpu.dispatch("attention_rows_backward", [bdy, bqkv, y, lse, b], dims, overrides={"D": D})
    assert_close(download(gpu, b, qkv.shape), download(gpu, a, qkv.shape), 1e-5, 1e-5, "rows vs columns")


@pytest.mark.parametrize("B,T,C,H", [(1, 1, 64, 2), (2, 70, 128, 2), (1, 33, 256, 8), (2, 256, 512, 8)])
def test_attention_rows_forward_then_backward_match_reference(gpu, B, T, C, H):
    """The rows pair as attention_ops runs it for wide heads: attention_rows_forward's y and lse
    feed attention_rows_backward (D = 64, 32)."""
    D = C // H
    qkv, dy = _world(B, T, C, seed=B * 1000 + T * 10 + C + H + 1)
    dims = {"B": B, "T": T, "C": C, "H": H}
    bqkv, bdy = upload(gpu, qkv), upload(gpu, dy)
    y, lse, dqkv = empty(gpu, (B, T, C)), empty(gpu, (B, H, T)), empty(gpu, qkv.shape)
    gpu.dispatch("attention_rows_forward", [bqkv, y, lse], dims, overrides=rows_forward_overrides(D, T))
    gpu.dispatch("attention_rows_backward", [bdy, bqkv, y, lse, dqkv], dims, overrides={"D": D})
    qkv64, dy64 = qkv.astype(np.float64), dy.astype(np.float64)
    ref_y, ref_lse = attention_forward(qkv64, H)
    ref_dqkv = attention_backward(dy64, qkv64, ref_y, ref_lse, H)
    assert_close(download(gpu, y, (B, T, C)), ref_y, FWD_ATOL, FWD_RTOL, "y")
    assert_close(download(gpu, lse, (B, H, T)), ref_lse, LSE_ATOL, LSE_RTOL, "lse")
    got = download(gpu, dqkv, qkv.shape)
    for name, cols in (("dq", slice(0, C)), ("dk", slice(C, 2 * C)), ("dv", slice(2 * C, 3 * C))):
        assert_close(got[..., cols], ref_dqkv[..., cols], BWD_ATOL, BWD_RTOL, name)


_TINT_LIMITS_SCRIPT = textwrap.dedent("""
    import json, sys
    import wgpudawn as wgpu
    adapter = wgpu.gpu.request_adapter_sync()
    device = adapter.request_device_sync()  # WebGPU's default limits: 16 KiB of workgroup storage
    module = device.create_shader_module(code=open(sys.argv[1]).read())
    for constants in json.loads(sys.argv[2]):
        try:
            device.create_compute_pipeline(layout="auto", compute={
                "module": module, "entry_point": "attention_rows_backward", "constants": constants})
            print("ok")
        except Exception as e:
            print("fail", str(e).strip().splitlines()[0])
""")


def test_attention_rows_backward_fits_webgpu_default_limits_under_tint():
    """Dawn's shader compiler (Tint: WGSL validation, uniformity analysis) on its Null backend, in a
    subprocess (WGPU_BACKEND_TYPE=Null must not reach this session's device) with WebGPU's default
    limits: the default tiles compile at every head width; QT = 16 at D = 64 (16.1 KiB) must not."""
    require(module_available("wgpudawn"), "wgpudawn is not installed")
    import json

    shader = Path(__file__).resolve().parents[1] / "shaders" / "attention_rows_backward.wgsl"
    cases = [{"D": d} for d in (4, 8, 12, 16, 32, 44, 48, 64)] + [{"D": 64, "QT": 16}]
    env = {**os.environ, "WGPU_BACKEND_TYPE": "Null"}
    out = subprocess.run([sys.executable, "-c", _TINT_LIMITS_SCRIPT, str(shader), json.dumps(cases)],
                         env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in out.stdout.splitlines() if line.startswith(("ok", "fail"))]
    assert len(lines) == len(cases), out.stdout + out.stderr
    for case, line in zip(cases[:-1], lines):
        assert line == "ok", f"{case}: {line}"
    assert lines[-1].startswith("fail") and "workgroup storage" in lines[-1], lines[-1]
