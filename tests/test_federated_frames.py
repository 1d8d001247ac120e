"""pyscript_app.federated.frames: the binary tensor frame codec (pure Python), checked against numpy."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
from array import array

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyscript_app.federated import frames as F


def _header(**kw) -> F.FrameHeader:
    base = dict(kind=F.KIND_DELTA, dtype=F.DTYPE_F16, round=7, count=3, tokens=96, loss=2.5)
    return F.FrameHeader(**{**base, **kw})


def test_header_layout_is_the_documented_28_bytes():
    raw = F.encode_header(_header())
    assert len(raw) == F.HEADER_SIZE == 28
    magic, version, kind, dtype, reserved, rnd, count, tokens, loss = struct.unpack("<4sHHHHIIIf", raw)
    assert (magic, version, kind, dtype, reserved) == (b"TGPT", 1, 2, 2, 0)
    assert (rnd, count, tokens, loss) == (7, 3, 96, 2.5)
    assert F.decode_header(raw) == _header()


@pytest.mark.parametrize(
    "offset, value, fmt",
    [(0, b"XGPT", "4s"), (4, 2, "<H"), (6, 9, "<H"), (8, 3, "<H"), (10, 1, "<H")],
    ids=["magic", "version", "kind", "dtype", "reserved"],
)
def test_bad_header_fields_raise_frame_error(offset, value, fmt):
    raw = bytearray(F.encode_header(_header()))
    struct.pack_into(fmt, raw, offset, value)
    with pytest.raises(F.FrameError) as e:
        F.decode_header(raw)
    assert e.value.reason == "bad_header"


def test_frame_length_must_be_exact():
    frame = F.encode_frame(F.KIND_DELTA, F.DTYPE_F32, [1.0, 2.0, 3.0], round=1)
    assert len(frame) == F.frame_size(F.DTYPE_F32, 3)
    header, payload = F.split_frame(frame)
    assert header.count == 3 and bytes(payload) == np.array([1, 2, 3], "<f4").tobytes()
    for bad in (frame[:-1], frame + b"\0", frame[:10]):
        with pytest.raises(F.FrameError):
            F.split_frame(bad)


def test_header_refuses_values_that_do_not_fit_u32():
    with pytest.raises(F.FrameError):
        F.encode_header(_header(tokens=-1))
    with pytest.raises(F.FrameError):
        F.encode_header(_header(round=2**32))


def test_f16_payload_matches_numpy_and_saturates_finite_values():
    rng = np.random.default_rng(3)
    values = (rng.standard_normal(500) * 10.0 ** rng.integers(-8, 4, 500)).astype(np.float32)
    assert F.f16_bytes(values.tolist()) == values.astype("<f2").tobytes()
    raw = F.f16_bytes([1e6, -1e9, float("nan"), float("inf")])
    out = np.frombuffer(raw, "<f2").astype(np.float32)
    assert out[0] == 65504 and out[1] == -65504 and np.isnan(out[2]) and np.isposinf(out[3])


def test_decode_payload_widens_f16_exactly():
    rng = np.random.default_rng(4)
    half = rng.standard_normal(300).astype("<f2")
    decoded = F.decode_payload(half.tobytes(), F.DTYPE_F16)
    assert np.array_equal(np.frombuffer(decoded.tobytes(), np.float32), half.astype(np.float32))
    f32 = rng.standard_normal(300).astype("<f4")
    assert F.decode_payload(f32.tobytes(), F.DTYPE_F32).tobytes() == f32.tobytes()


def test_apply_update_is_bit_identical_to_numpy_float32_add():
    rng = np.random.default_rng(5)
    w = (rng.standard_normal(4000) * 10.0 ** rng.integers(-10, 6, 4000)).astype(np.float32)
    u = (rng.standard_normal(4000) * 10.0 ** rng.integers(-7, 2, 4000)).astype(np.float16)
    weights = array("f", w.tobytes())
    F.apply_update(weights, F.decode_payload(u.tobytes(), F.DTYPE_F16))
    expected = np.add(w, u.astype(np.float32), dtype=np.float32)
    assert weights.tobytes() == expected.tobytes()
    assert F.weights_sha256(F.f32_bytes(weights)) == hashlib.sha256(expected.tobytes()).hexdigest()


def test_frames_and_relay_client_import_without_numpy():
    code = "import sys; sys.modules['numpy'] = None; import pyscript_app.federated.frames, pyscript_app.federated.relay_client"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(_repo_root()))


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_any_bytes_either_parse_or_raise_frame_error(data):
    for parse in (F.decode_header, F.split_frame, F.decode_frame):
        try:
            parse(data)
        except F.FrameError:
            pass


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([F.KIND_WEIGHTS, F.KIND_DELTA, F.KIND_UPDATE]),
    st.sampled_from([F.DTYPE_F32, F.DTYPE_F16]),
    st.integers(0, 2**32 - 1),
    st.lists(st.floats(-1000, 1000, width=16), max_size=40),
)
def test_fuzz_encode_decode_round_trip(kind, dtype, rnd, values):
    frame = F.encode_frame(kind, dtype, values, round=rnd, tokens=len(values))
    header, decoded = F.decode_frame(frame)
    assert (header.kind, header.dtype, header.round, header.count) == (kind, dtype, rnd, len(values))
    assert list(decoded) == values  # width-16 floats are exact in f16 and f32
