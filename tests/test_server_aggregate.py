"""server.aggregate: delta validation, token-weighted FedAvg, DiLoCo's outer Nesterov step."""

from __future__ import annotations

import numpy as np
import pytest

from pyscript_app.federated.frames import DTYPE_F16, DTYPE_F32, KIND_UPDATE, encode_frame
from relay_world import delta_frame
from server import aggregate as A
from server.protocol import build_session_config
from server.settings import RelaySettings


def _config(**body):
    return build_session_config({"model": "nano", "dataset": "names", **body}, RelaySettings(), init_seed=1)


def _small_delta(cfg, seed=0, scale=1e-3):
    return (np.random.default_rng(seed).standard_normal(cfg.param_count) * scale).astype(np.float32)


def test_valid_delta_passes_and_is_decoded_to_float32():
    cfg = _config()
    d = _small_delta(cfg)
    delta = A.validate_delta(delta_frame(d, 0, tokens=100, loss=3.0), cfg)
    assert delta.values.dtype == np.float32 and np.array_equal(delta.values, d.astype(np.float16).astype(np.float32))
    assert delta.header.tokens == 100 and delta.header.loss == 3.0


def _rejection(frame, cfg) -> str:
    with pytest.raises(A.Rejected) as e:
        A.validate_delta(frame, cfg)
    return e.value.reason


def test_each_check_has_its_reason():
    cfg = _config(batch=2, blocksize=8, max_local_steps=5)  # max tokens 80
    d = _small_delta(cfg)
    nan, inf, huge = d.copy(), d.copy(), np.full(cfg.param_count, 10.0, np.float32)
    nan[5], inf[-1] = np.nan, np.inf
    assert _rejection(delta_frame(nan, 0, 10), cfg) == "non_finite"
    assert _rejection(delta_frame(inf, 0, 10, dtype=DTYPE_F32), cfg) == "non_finite"
    assert _rejection(delta_frame(d, 0, 10, loss=float("nan")), cfg) == "non_finite"
    assert _rejection(delta_frame(d, 0, 10, loss=-1.0), cfg) == "loss_out_of_range"
    assert _rejection(delta_frame(d[:-1], 0, 10), cfg) == "shape_mismatch"
    assert _rejection(delta_frame(d, 0, 10)[:-2], cfg) == "shape_mismatch"
    assert _rejection(delta_frame(d, 0, 0), cfg) == "tokens_out_of_range"
    assert _rejection(delta_frame(d, 0, 81), cfg) == "tokens_out_of_range"
    assert _rejection(delta_frame(d, 0, 2**32 - 1), cfg) == "tokens_out_of_range"
    assert _rejection(delta_frame(huge, 0, 10), cfg) == "norm_too_large"
    assert _rejection(b"TGPT" + b"\0" * 10, cfg) == "bad_header"
    update = encode_frame(KIND_UPDATE, DTYPE_F16, d.astype("<f2").tobytes(), round=0, tokens=10)
    assert _rejection(update, cfg) == "bad_header"
    assert A.validate_delta(delta_frame(d, 0, 80), cfg).header.tokens == 80  # the cap itself is allowed


def test_weighted_mean_is_token_weighted_in_float64():
    s = A.WeightedSum(3)
    s.add(np.array([1, 2, 3], np.float32), tokens=100, loss=2.0)
    s.add(np.array([-1, 0, 1], np.float32), tokens=300, loss=4.0)
    assert np.allclose(s.mean(), [(100 - 300) / 400, 200 / 400, (300 + 300) / 400], atol=0, rtol=1e-15)
    assert s.mean().dtype == np.float64 and s.mean_loss == pytest.approx(3.5) and s.tokens == 400


def test_fedavg_update_is_the_mean_delta():
    cfg = _config()
    mean = np.linspace(-1, 1, cfg.param_count)
    u, momentum = A.outer_update(mean, cfg, None)
    assert momentum is None and np.array_equal(u, mean)


def test_diloco_matches_nesterov_sgd_on_the_negated_delta():
    cfg = _config(aggregator="diloco", outer_lr=0.7, outer_momentum=0.9)  # the DiLoCo paper's values
    assert (cfg.outer_lr, cfg.outer_momentum) == (0.7, 0.9)
    rng = np.random.default_rng(1)
    momentum, buf = None, np.zeros(cfg.param_count)
    for _ in range(3):  # PyTorch SGD(nesterov): buf = mu*buf + g; p -= lr*(g + mu*buf), with g = -d
        d = rng.standard_normal(cfg.param_count) * 1e-2
        u, momentum = A.outer_update(d, cfg, momentum)
        g = -d
        buf = 0.9 * buf + g
        assert np.allclose(u, -0.7 * (g + 0.9 * buf), rtol=1e-6, atol=1e-9)


def test_encode_update_saturates_and_decodes_to_what_clients_add():
    payload, decoded = A.encode_update(np.array([1e9, -1e9, 0.1, 1e-9]), DTYPE_F16)
    assert np.array_equal(np.frombuffer(payload, "<f2").astype(np.float32), decoded)
    assert decoded[0] == 65504 and decoded[1] == -65504 and decoded[2] == np.float32(np.float16(0.1))
    payload32, decoded32 = A.encode_update(np.array([0.1]), DTYPE_F32)
    assert decoded32[0] == np.float32(0.1) and len(payload32) == 4


def test_apply_update_is_float32_add():
    w = np.array([1.0, 1e8, -3.0], np.float32)
    out = A.apply_update(w, np.array([1e-8, 1.0, 0.5], np.float32))
    assert out.dtype == np.float32 and np.array_equal(out, np.array([1.0, 1e8, -2.5], np.float32))


def test_f16_encoding_is_bit_identical_to_numpys_cast_including_ties_and_subnormals():
    codes = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    exact = np.unique(codes[np.isfinite(codes)].astype(np.float64))
    ties = (exact[:-1] + exact[1:]) / 2  # halfway between neighbours: round to even
    rng = np.random.default_rng(3)
    x = np.concatenate([exact, ties, np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf),
                        rng.standard_normal(50_000) * 1e-6, rng.standard_normal(50_000) * 1e3, [-0.0, -1e-30, 7e4, -7e4]])
    payload, decoded = A.encode_update(x, DTYPE_F16)
    expected = np.clip(x, -65504, 65504).astype("<f2")
    assert np.array_equal(np.frombuffer(payload, "<u2"), expected.view("<u2"))
    assert np.array_equal(decoded.view(np.uint32), expected.astype(np.float32).view(np.uint32))


def test_the_replay_fingerprint_matches_only_identical_payloads():
    cfg = _config()
    d = _small_delta(cfg)
    first = A.validate_delta(delta_frame(d, 0, tokens=10), cfg)
    again = A.validate_delta(delta_frame(d, 0, tokens=20, loss=1.0), cfg, out=np.empty(cfg.param_count, np.float32))
    d[7] += 1e-2
    other = A.validate_delta(delta_frame(d, 0, tokens=10), cfg)
    assert first.digest == again.digest != other.digest
