"""shaders/attention_blocks.wgsl (forward) and attention_blocks_backward.wgsl against the reference
attention_forward / attention_backward (float64), and attention_ops.forward_choice / backward_choice
(which adapters get them).

As test_kernels_attention_rows.py: y and lse come from attention.wgsl's attention_forward (checked in
test_kernels_attention.py); dqkv is pre-filled with NaN (every element must be written); tolerances
dqkv atol 2e-5 + rtol 2e-4. Shapes cover one token, T not a multiple of the 64-row blocks (5, 63, 65,
97, 130), T spanning 1 .. 5 blocks (so both kinds of workgroup walk several blocks), D = 4 .. 64 (D/4
odd, D not a multiple of the 8-column chunks: padded with zero columns), H = 1 .. 8, B = 1 .. 3, and the
large model's attention. The forward's y and lse: atol 1e-5 + rtol 1e-4 and 1e-5 + 1e-5 (as
test_kernels_attention_rows.py). One test compiles the kernels under Dawn's Tint."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from _require import module_available, require
from _gpu import assert_close, download, empty, gpu, upload  # noqa: F401
from pyscript_app.gpu import attention_ops
from pyscript_app.gpu.attention_ops import rows_forward_overrides, tile_rows
from pyscript_app.reference.ops_attention import attention_backward, attention_forward

pytestmark = pytest.mark.gpu
BWD_ATOL, BWD_RTOL = 2e-5, 2e-4
FWD_ATOL, FWD_RTOL = 1e-5, 1e-4
LSE_ATOL, LSE_RTOL = 1e-5, 1e-5
GPU = {"adapter_type": "DiscreteGPU"}

# (B, T, C, H)
SHAPES = [(1, 1, 64, 1), (2, 5, 128, 2), (1, 63, 64, 1), (1, 65, 128, 2), (3, 33, 256, 4),
          (1, 97, 256, 4), (2, 130, 512, 8), (1, 300, 128, 2)]


def _world(B, T, C, seed):
    rng = np.random.default_rng(seed)
    qkv = (rng.standard_normal((B, T, 3 * C)) * 1.5).astype(np.float32)
    dy = rng.standard_normal((B, T, C)).astype(np.float32)
    return qkv, dy


def _check(gpu, B, T, C, H, seed, forward="attention_forward"):
    """attention_blocks_backward after `forward` (its y, lse) against the float64 reference; with the
    blocks forward, its y and lse are checked too."""
    D = C // H
    qkv, dy = _world(B, T, C, seed)
    dims = {"B": B, "T": T, "C": C, "H": H}
    bqkv, bdy = upload(gpu, qkv), upload(gpu, dy)
    y, lse = empty(gpu, (B, T, C)), empty(gpu, (B, H, T))
    gpu.dispatch(forward, [bqkv, y, lse], dims, overrides=attention_ops.kernel_overrides(forward, D, T))
    dqkv = upload(gpu, np.full(qkv.shape, np.nan, np.float32))  # every element must be overwritten
    gpu.dispatch("attention_blocks_backward", [bdy, bqkv, y, lse, dqkv], dims, overrides={"D": D})
    got = download(gpu, dqkv, qkv.shape)
    qkv64, dy64 = qkv.astype(np.float64), dy.astype(np.float64)
    ref_y, ref_lse = attention_forward(qkv64, H)
    ref = attention_backward(dy64, qkv64, ref_y, ref_lse, H)
    if forward == "attention_blocks_forward":
        assert_close(download(gpu, y, (B, T, C)), ref_y, FWD_ATOL, FWD_RTOL, "y")
        assert_close(download(gpu, lse, (B, H, T)), ref_lse, LSE_ATOL, LSE_RTOL, "lse")
    for name, cols in (("dq", slice(0, C)), ("dk", slice(C, 2 * C)), ("dv", slice(2 * C, 3 * C))):
        assert_close(got[..., cols], ref[..., cols], BWD_ATOL, BWD_RTOL, name)


@pytest.mark.parametrize("B,T,C,H", SHAPES)
def test_attention_blocks_forward_then_backward_match_reference(gpu, B, T, C, H):
    """The blocks pair as attention_ops runs it on GPUs: the forward's y, lse (NaN-filled before:
    every element written) feed the backward."""
    _check(gpu, B, T, C, H, seed=B * 1000 + T * 10 + C + H + 1, forward="attention_blocks_forward")


@pytest.mark.parametrize("D", [4, 12, 20, 32, 44, 60])
def test_attention_blocks_forward_any_head_width(gpu, D):
    _check(gpu, 2, 70, 2 * D, 2, seed=D * 7 + 1, forward="attention_blocks_forward")


def test_attention_blocks_forward_is_causal(gpu):
    """Changing the last token's q, k, v changes no earlier row's y or lse (T = 130: three blocks)."""
    B, T, C, H = 1, 130, 128, 2
    qkv, _ = _world(B, T, C, seed=21)
    dims = {"B": B, "T": T, "C": C, "H": H}
    outs = []
    for last in (qkv[:, -1], qkv[:, -1] * -3.0 + 1.0):
        x = qkv.copy()
        x[:, -1] = last
        y, lse = empty(gpu, (B, T, C)), empty(gpu, (B, H, T))
        gpu.dispatch("attention_blocks_forward", [upload(gpu, x), y, lse], dims, overrides={"D": C // H})
        outs.append((download(gpu, y, (B, T, C)), download(gpu, lse, (B, H, T))))
    assert np.array_equal(outs[0][0][:, :-1], outs[1][0][:, :-1])
    assert np.array_equal(outs[0][1][..., :-1], outs[1][1][..., :-1])
    assert not np.array_equal(outs[0][0][:, -1], outs[1][0][:, -1])


@pytest.mark.parametrize("B,T,C,H", SHAPES)
def test_attention_blocks_backward_matches_reference(gpu, B, T, C, H):
    _check(gpu, B, T, C, H, seed=B * 1000 + T * 10 + C + H)


@pytest.mark.parametrize("D", [4, 12, 20, 32, 44, 60])
def test_attention_blocks_backward_any_head_width(gpu, D):
    # narrower heads than 64: zero columns pad the chunks and the column groups past D/4 store nothing
    _check(gpu, 2, 70, 2 * D, 2, seed=D * 7)


def test_attention_blocks_backward_large_model_shape_after_rows_forward(gpu):
    """The large model's attention (B=2 of its 8, T=256, C=512, H=8: D=64) as the GPU step runs it:
    attention_rows_forward's y and lse feed the blocks backward."""
    _check(gpu, 2, 256, 512, 8, seed=5, forward="attention_rows_forward")


def test_attention_blocks_backward_equals_rows_backward_closely(gpu):
    """Blocks and rows agree far inside the reference tolerance (no float64 needed: 1e-5 absolute)."""
    B, T, C, H = 2, 140, 256, 4
    D = C // H
    qkv, dy = _world(B, T, C, seed=3)
    dims = {"B": B, "T": T, "C": C, "H": H}
    bqkv, bdy = upload(gpu, qkv), upload(gpu, dy)
    y, lse = empty(gpu, (B, T, C)), empty(gpu, (B, H, T))
    gpu.dispatch("attention_rows_forward", [bqkv, y, lse], dims, overrides=rows_forward_overrides(D, T))
    a, b = empty(gpu, qkv.shape), empty(gpu, qkv.shape)
    gpu.dispatch("attention_rows_backward", [bdy, bqkv, y, lse, a], dims, overrides={"D": D})
    gpu.dispatch("attention_blocks_backward", [bdy, bqkv, y, lse, b], dims, overrides={"D": D})
    assert_close(download(gpu, b, qkv.shape), download(gpu, a, qkv.shape), 1e-5, 1e-5, "blocks vs rows")


def test_backward_choice_takes_blocks_only_on_gpus_with_the_workgroup_memory():
    need = attention_ops.BLOCKS_BACKWARD_WORKGROUP_BYTES
    assert attention_ops.backward_choice(64, 256, GPU, 49152) == ("attention_blocks_backward", {"D": 64})
    assert attention_ops.backward_choice(64, 256, {"adapter_type": "IntegratedGPU"}, need)[0] == \
        "attention_blocks_backward"
    # a CPU adapter (llvmpipe, SwiftShader), too little workgroup memory, or a narrow head: rows or columns
    assert attention_ops.backward_choice(64, 256, {"adapter_type": "CPU"}, 65536)[0] == "attention_rows_backward"
    assert attention_ops.backward_choice(64, 256, GPU, need - 1)[0] == "attention_rows_backward"
    assert attention_ops.backward_choice(64, 256, GPU, 16384) == (
        "attention_rows_backward", attention_ops.rows_backward_overrides(64, 256))
    assert attention_ops.backward_choice(32, 128, GPU, 49152) == ("attention_blocks_backward", {"D": 32})
    # contexts shorter than two blocks, heads narrower than 32: rows or columns
    assert attention_ops.backward_choice(32, 64, GPU, 49152)[0] == "attention_blocks_backward"
    assert attention_ops.backward_choice(32, 63, GPU, 49152)[0] == "attention_rows_backward"
    assert attention_ops.backward_choice(16, 256, GPU, 49152) == ("attention_backward", {"D": 16, "BQ": tile_rows(16)})


def test_forward_choice_takes_blocks_only_on_gpus_with_the_workgroup_memory():
    need = attention_ops.BLOCKS_FORWARD_WORKGROUP_BYTES
    assert attention_ops.forward_choice(64, 256, GPU, need) == ("attention_blocks_forward", {"D": 64})
    assert attention_ops.forward_choice(64, 256, {"adapter_type": "CPU"}, 65536) == (
        "attention_rows_forward", rows_forward_overrides(64, 256))
    assert attention_ops.forward_choice(64, 256, GPU, need - 1)[0] == "attention_rows_forward"
    assert attention_ops.forward_choice(32, 128, GPU, 49152) == ("attention_blocks_forward", {"D": 32})
    assert attention_ops.forward_choice(64, 63, GPU, 49152) == ("attention_rows_forward", rows_forward_overrides(64, 63))
    assert attention_ops.forward_choice(16, 256, GPU, 49152) == ("attention_forward", {"D": 16, "BQ": tile_rows(16)})


def test_attention_ops_dispatches_the_chosen_backward(gpu, monkeypatch):
    """AttentionOps asks forward_choice and backward_choice with the executor's adapter and workgroup
    limit, and its forward and backward (forced to the blocks kernels here, as on a GPU) match the
    reference."""
    seen = []

    def forced(D, T, adapter_info, workgroup_bytes):
        seen.append((adapter_info, workgroup_bytes))
        return "attention_blocks_backward", {"D": D}

    def forced_forward(D, T, adapter_info, workgroup_bytes):
        seen.append((adapter_info, workgroup_bytes))
        return "attention_blocks_forward", {"D": D}

    monkeypatch.setattr(attention_ops, "backward_choice", forced)
    monkeypatch.setattr(attention_ops, "forward_choice", forced_forward)
    B, T, C, H = 1, 70, 128, 2
    attn = attention_ops.AttentionOps(gpu, B, T, C, H, T)
    assert (attn.forward_kernel, attn.backward_kernel) == ("attention_blocks_forward", "attention_blocks_backward")
    assert seen == [(gpu.adapter_info, gpu.max_workgroup_bytes)] * 2
    qkv, dy = _world(B, T, C, seed=11)
    bqkv, bdy = upload(gpu, qkv), upload(gpu, dy)
    y, lse, dqkv = empty(gpu, (B, T, C)), empty(gpu, (B, H, T)), empty(gpu, qkv.shape)
    attn.forward(bqkv, y, lse)
    attn.backward(bdy, bqkv, y, lse, dqkv)
    qkv64 = qkv.astype(np.float64)
    ref_y, ref_lse = attention_forward(qkv64, H)
    ref = attention_backward(dy.astype(np.float64), qkv64, ref_y, ref_lse, H)
    assert_close(download(gpu, y, (B, T, C)), ref_y, FWD_ATOL, FWD_RTOL, "y")
    assert_close(download(gpu, dqkv, qkv.shape), ref, BWD_ATOL, BWD_RTOL, "dqkv")


_TINT_SCRIPT = textwrap.dedent("""
    import sys
    import wgpudawn as wgpu
    adapter = wgpu.gpu.request_adapter_sync()
    device = adapter.request_device_sync()  # the Null backend's limits: WebGPU's default 16 KiB
    module = device.create_shader_module(code=open(sys.argv[1]).read())  # parse, validate, uniformity
    print("module ok")
    for d in (4, 20, 32, 64):
        try:
            device.create_compute_pipeline(layout="auto", compute={
                "module": module, "entry_point": sys.argv[2], "constants": {"D": d}})
            print("ok", d)
        except Exception as e:
            print("fail", d, str(e).strip().splitlines()[0])
""")


@pytest.mark.parametrize("file,entry,need", [
    ("attention_blocks.wgsl", "attention_blocks_forward", attention_ops.BLOCKS_FORWARD_WORKGROUP_BYTES),
    ("attention_blocks_backward.wgsl", "attention_blocks_backward", attention_ops.BLOCKS_BACKWARD_WORKGROUP_BYTES),
])
def test_attention_blocks_compile_under_tint_and_declare_their_workgroup_memory(file, entry, need):
    """Dawn's shader compiler (Tint: WGSL validation, uniformity analysis) on its Null backend, in a
    subprocess (WGPU_BACKEND_TYPE=Null must not reach this session's device). That backend offers only
    WebGPU's default 16 KiB of workgroup memory, so each pipeline must fail on exactly that, naming
    the total attention_ops requires (BLOCKS_*_WORKGROUP_BYTES) and nothing else."""
    require(module_available("wgpudawn"), "wgpudawn is not installed")
    shader = Path(__file__).resolve().parents[1] / "shaders" / file
    env = {**os.environ, "WGPU_BACKEND_TYPE": "Null"}
    out = subprocess.run([sys.executable, "-c", _TINT_SCRIPT, str(shader), entry],
                         env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in out.stdout.splitlines() if line.startswith(("module", "ok", "fail"))]
    assert lines[:1] == ["module ok"] and len(lines) == 5, out.stdout + out.stderr
    for line in lines[1:]:
        assert line.startswith("fail") and f"workgroup storage ({need} bytes)" in line, line
