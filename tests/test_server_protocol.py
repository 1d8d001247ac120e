"""server.protocol: session-creation requests and client control messages, parsed strictly."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyscript_app.config import preset
from server.protocol import (
    InvalidRequest,
    Join,
    LossPing,
    ProtocolError,
    SessionConfig,
    build_session_config,
    encode,
    parse_client_message,
)
from server.settings import RelaySettings

SID = "A" * 22


def test_defaults_fill_a_minimal_request():
    s = RelaySettings()
    cfg = build_session_config({"model": "tiny", "dataset": "names"}, s, init_seed=42)
    assert cfg.param_count == preset("tiny").param_count and cfg.model_config == preset("tiny").to_dict()
    assert (cfg.quorum, cfg.batch, cfg.max_local_steps) == (s.default_quorum, s.default_batch, s.default_max_local_steps)
    assert cfg.blocksize == preset("tiny").block_size and cfg.aggregator == "fedavg" and cfg.outer_lr == 1.0
    assert cfg.broadcast_dtype == "f16" and cfg.init_seed == 42
    assert cfg.max_tokens == cfg.batch * cfg.blocksize * cfg.max_local_steps
    assert math.isclose(cfg.max_delta_norm, s.max_delta_rms * math.sqrt(cfg.param_count))
    assert SessionConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_the_local_lr_is_optional_and_bounded():
    s = RelaySettings()
    assert build_session_config({"model": "nano", "dataset": "names"}, s, init_seed=1).lr is None
    assert build_session_config({"model": "nano", "dataset": "names", "lr": 1e-3}, s, init_seed=1).lr == 1e-3
    with pytest.raises(InvalidRequest, match="lr must be"):
        build_session_config({"model": "nano", "dataset": "names", "lr": 5}, s, init_seed=1)


def test_planned_rounds_are_optional_and_bounded():
    s = RelaySettings()
    assert build_session_config({"model": "nano", "dataset": "names"}, s, init_seed=1).rounds is None
    cfg = build_session_config({"model": "nano", "dataset": "names", "rounds": 40}, s, init_seed=1)
    assert cfg.rounds == 40 and SessionConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    old = {k: v for k, v in cfg.to_dict().items() if k != "rounds"}  # a checkpoint written before the field
    assert SessionConfig.from_dict(old).rounds is None
    for bad in (0, 2.5, "40"):
        with pytest.raises(InvalidRequest, match="rounds must be"):
            build_session_config({"model": "nano", "dataset": "names", "rounds": bad}, s, init_seed=1)


def test_diloco_defaults_to_lr_0_7_momentum_0_5():
    cfg = build_session_config({"model": "nano", "dataset": "names", "aggregator": "diloco"}, RelaySettings(), 1)
    assert (cfg.outer_lr, cfg.outer_momentum) == (0.7, 0.5)
    fedavg = build_session_config({"model": "nano", "dataset": "names"}, RelaySettings(), 1)
    assert (fedavg.outer_lr, fedavg.outer_momentum) == (1.0, 0.0)
    from pyscript_app.federated.outer import OUTER_DEFAULTS  # the federated lesson shows these

    assert OUTER_DEFAULTS == {"fedavg": (1.0, 0.0), "diloco": (cfg.outer_lr, cfg.outer_momentum)}


def test_every_bad_field_is_reported_at_once():
    body = {"model": "huge", "quorum": 0, "round_seconds": "60", "aggregator": "sgd", "batch": True,
            "blocksize": 5, "tokenizer_sha256": "XYZ", "colour": "red"}
    with pytest.raises(InvalidRequest) as e:
        build_session_config(body, RelaySettings(), 1)
    text = " | ".join(e.value.reasons)
    for word in ("model", "dataset is required", "quorum", "round_seconds", "aggregator", "batch",
                 "tokenizer_sha256", "unknown field 'colour'"):
        assert word in text, word


def test_blocksize_is_bounded_by_the_model_context_and_grace_by_the_round():
    s = RelaySettings()
    with pytest.raises(InvalidRequest, match="blocksize"):
        build_session_config({"model": "nano", "dataset": "names", "blocksize": 17}, s, 1)
    with pytest.raises(InvalidRequest, match="grace_seconds"):
        build_session_config({"model": "nano", "dataset": "names", "round_seconds": 5, "grace_seconds": 5}, s, 1)
    with pytest.raises(InvalidRequest, match="parameters"):
        build_session_config({"model": "large", "dataset": "names"}, RelaySettings(max_param_count=10**6), 1)
    with pytest.raises(InvalidRequest):
        build_session_config(["model"], s, 1)


def test_join_and_loss_ping_parse_to_typed_values():
    msg = parse_client_message(json.dumps({"type": "join", "session_id": SID, "name": " tab 1 "}), 4096)
    assert msg == Join(session_id=SID, name="tab 1", client_token=None)
    token = "t" * 32
    msg = parse_client_message(json.dumps({"type": "join", "session_id": SID, "client_token": token}), 4096)
    assert msg.client_token == token and msg.name == "anonymous"
    assert parse_client_message('{"type":"loss_ping","loss":2.5,"tokens":64}', 4096) == LossPing(2.5, 64)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("not json", "bad_json"),
        ('{"type":"loss_ping","loss":NaN,"tokens":1}', "bad_json"),
        ("[1,2]", "bad_message"),
        ('{"type":"launch"}', "unknown_type"),
        ('{"type":"join"}', "bad_message"),
        ('{"type":"join","session_id":"short"}', "bad_message"),
        ('{"type":"join","session_id":"%s","name":"<script>"}' % SID, "bad_message"),
        ('{"type":"join","session_id":"%s","admin":true}' % SID, "bad_message"),
        ('{"type":"loss_ping","loss":-1,"tokens":1}', "bad_message"),
        ('{"type":"loss_ping","loss":1e9,"tokens":1}', "bad_message"),
        ('{"type":"loss_ping","loss":true,"tokens":1}', "bad_message"),
        ('{"type":"loss_ping","loss":1,"tokens":-5}', "bad_message"),
        ("[" * 100000 + "]" * 100000, "too_large"),
    ],
)
def test_bad_messages_raise_typed_protocol_errors(text, reason):
    with pytest.raises(ProtocolError) as e:
        parse_client_message(text, 4096)
    assert e.value.reason == reason


def test_deep_nesting_within_the_size_cap_is_a_typed_error():
    with pytest.raises(ProtocolError):
        parse_client_message("[" * 2000 + "]" * 2000, 1 << 20)


def test_encode_is_compact_and_refuses_nan():
    assert encode("submit_ack", round=1) == '{"type":"submit_ack","round":1}'
    with pytest.raises(ValueError):
        encode("live_loss", loss=float("nan"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.fixed_dictionaries({"type": st.sampled_from(["join", "loss_ping"])}, optional={
        "session_id": json_values, "name": json_values, "client_token": json_values, "loss": json_values,
        "tokens": json_values}).map(json.dumps),
))
def test_fuzz_parse_never_raises_anything_but_protocol_error(text):
    try:
        parse_client_message(text, 4096)
    except ProtocolError:
        pass
