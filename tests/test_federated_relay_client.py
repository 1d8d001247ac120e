"""pyscript_app.federated.relay_client: the transport-free client, driven by a real (in-memory) session."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyscript_app.federated.frames import DTYPE_F32, KIND_DELTA, split_frame
from pyscript_app.federated.relay_client import PureWeights, RelayClient, RelayProtocolError
from server.session import Close
from test_server_session import T0, make_session


class Pipe:
    """Delivers a session's effects to RelayClients, collecting the events each one sees."""

    def __init__(self, session):
        self.session, self.clients, self.events = session, {}, {}

    def join(self, client: RelayClient, now=T0):
        msg = json.loads(client.join_message())
        cid, _, effects = self.session.join(msg["name"], msg.get("client_token"), now)
        self.clients[cid] = client
        self.events[cid] = []
        self.deliver(effects)
        return cid

    def deliver(self, effects):
        for e in effects:
            if isinstance(e, Close):
                continue
            for cid in e.to:
                client = self.clients[cid]
                event = client.on_text(e.data) if isinstance(e.data, str) else client.on_binary(e.data)
                self.events[cid].append(event)


def test_join_message_and_state_after_join_ack():
    assert json.loads(RelayClient("S" * 22, "tab").join_message()) == {"type": "join", "session_id": "S" * 22, "name": "tab"}
    resumed = json.loads(RelayClient("S" * 22, "tab", client_token="t" * 32).join_message())
    assert resumed["client_token"] == "t" * 32
    s = make_session()
    pipe, client = Pipe(s), RelayClient(s.session_id, "a")
    cid = pipe.join(client)
    assert client.client_id == cid and client.round == 0 and client.param_count == s.config.param_count
    ack = pipe.events[cid][0]
    assert ack.type == "join_ack" and client.data_seed == ack.message["data_seed"]
    assert client.client_token == ack.message["client_token"]
    weights_event = pipe.events[cid][1]
    assert weights_event.type == "weights"
    held = PureWeights.from_frame(weights_event)
    client.check_weights(held.sha256())  # matches join_ack's weights_sha256
    assert json.loads(client.loss_ping(2.5, 64)) == {"type": "loss_ping", "loss": 2.5, "tokens": 64}


def test_pure_python_clients_stay_bit_identical_with_the_relay_over_rounds():
    s = make_session(quorum=2)
    pipe = Pipe(s)
    clients = [RelayClient(s.session_id, name) for name in ("a", "b")]
    ids = [pipe.join(c) for c in clients]
    held = {cid: PureWeights.from_frame(pipe.events[cid][1]) for cid in ids}
    rng = np.random.default_rng(0)
    for r in range(3):
        for cid, client in zip(ids, clients):
            assert client.can_submit and client.round == r
            delta = (rng.standard_normal(s.config.param_count) * 1e-3).tolist()
            frame = client.delta_frame(delta, tokens=64, loss=2.0)
            assert split_frame(frame)[0].kind == KIND_DELTA and not client.can_submit
            pipe.deliver(s.submit(cid, frame, T0))
        for cid, client in zip(ids, clients):
            update = next(e for e in reversed(pipe.events[cid]) if e.type == "update")
            held[cid].apply(update)
            client.check_weights(held[cid].sha256())
            assert client.round == r + 1
    assert held[ids[0]].sha256() == held[ids[1]].sha256() == s.weights_sha256


def test_deltas_may_be_ready_f32_bytes():
    s = make_session()
    client = RelayClient(s.session_id, "a")
    Pipe(s).join(client)
    raw = np.zeros(s.config.param_count, "<f4").tobytes()
    header, payload = split_frame(client.delta_frame(raw, tokens=1, loss=0.0, dtype=DTYPE_F32))
    assert header.count == s.config.param_count and bytes(payload) == raw


def test_protocol_violations_by_the_relay_raise():
    s = make_session(quorum=1)
    pipe, client = Pipe(s), RelayClient(s.session_id, "a")
    cid = pipe.join(client)
    with pytest.raises(RelayProtocolError):
        client.check_weights("0" * 64)
    with pytest.raises(RelayProtocolError):
        client.on_text("{not json")
    with pytest.raises(RelayProtocolError):
        client.on_binary(b"TGPT\x01")
    effects = s.submit(cid, client.delta_frame([0.0] * s.config.param_count, tokens=1, loss=1.0), T0)
    update = next(e.data for e in effects if isinstance(e.data, bytes))
    with pytest.raises(RelayProtocolError, match="without its round_closed"):
        client.on_binary(update)  # the UPDATE arrived without its round_closed
    with pytest.raises(RelayProtocolError):
        RelayClient("S" * 22).delta_frame([0.0], tokens=1, loss=1.0)  # not joined
