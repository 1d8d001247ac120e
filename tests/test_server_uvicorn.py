"""The relay as deployed: `server.run` (uvicorn) in a subprocess on loopback, real sockets.

Short real durations only here (pings, auth timeout, a deadline round); the whole file takes ~10 s.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import struct
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from _relay_process import free_port
from _relay_process import relay_process as _relay_process
from pyscript_app.federated.frames import HEADER_SIZE
from pyscript_app.federated.relay_client import RelayClient

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(60)

FAST_ENV = {"TABGPT_RELAY_PING_INTERVAL_S": "0.3", "TABGPT_RELAY_PING_TIMEOUT_S": "0.3",
            "TABGPT_RELAY_AUTH_TIMEOUT_S": "0.5", "TABGPT_RELAY_MIN_ROUND_SECONDS": "0.1",
            "TABGPT_RELAY_TICK_INTERVAL_S": "0.02"}


def relay_process(state_dir: Path, port: int | None = None):
    """The shared relay subprocess, with fast pings and auth timeout for these tests."""
    return _relay_process(state_dir, port, env=FAST_ENV)


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    with relay_process(tmp_path_factory.mktemp("relay-state")) as (proc, base):
        yield base


def _create(base: str, **body) -> dict:
    r = httpx.post(base + "/api/sessions", json={"model": "nano", "dataset": "names", **body})
    assert r.status_code == 201, r.text
    return r.json()


def _ws_url(base: str) -> str:
    return base.replace("http", "ws", 1) + "/ws"


class Worker:
    """A RelayClient over a real socket, holding numpy weights."""

    def __init__(self, base: str, session_id: str, name: str, token: str | None = None,
                 join_secret: str | None = None):
        self._stack = ExitStack()
        # max_queue=None: reading never pauses, so a close never waits behind unread fragments
        self.ws = self._stack.enter_context(connect(_ws_url(base), open_timeout=5, max_size=None, max_queue=None))
        self.client = RelayClient(session_id, name, token, join_secret)
        self.weights: np.ndarray | None = None
        self.ws.send(self.client.join_message())

    def close(self) -> None:
        self._stack.close()

    def pump(self, until: str) -> dict:
        """Handle frames until an event of type `until`; return its message."""
        while True:
            event = self._handle(self.ws.recv(timeout=5))
            if event.type == until:
                return event.message

    def _handle(self, frame):
        if isinstance(frame, str):
            return self.client.on_text(frame)
        event = self.client.on_binary(frame)
        if event.type == "weights":
            self.weights = np.frombuffer(event.payload, "<f4").copy()
        else:
            self.weights = self.weights + np.frombuffer(event.payload, "<f2").astype(np.float32)
        self.client.check_weights(_sha(self.weights))
        return event


def _sha(weights: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(weights.astype("<f4").tobytes()).hexdigest()


def test_three_workers_run_rounds_and_hold_identical_weights(relay):
    s = _create(relay, quorum=3, round_seconds=30, grace_seconds=5)
    workers = [Worker(relay, s["session_id"], f"w{i}") for i in range(3)]
    for w in workers:
        w.pump("weights")
    rng = np.random.default_rng(0)
    for r in range(3):
        for w in workers:
            delta = (rng.standard_normal(s["param_count"]) * 1e-3).astype("<f2").tobytes()
            w.ws.send(w.client.delta_frame(delta, tokens=128, loss=3.0 - r))
        closed = [w.pump("update") for w in workers]
        assert {c["weights_sha256"] for c in closed} == {_sha(w.weights) for w in workers}
        assert len({_sha(w.weights) for w in workers}) == 1 and closed[0]["round"] == r
    status = httpx.get(f"{relay}/api/sessions/{s['session_id']}").json()
    assert status["round"] == 3 and [h["loss"] for h in status["history"]] == [3.0, 2.0, 1.0]
    for w in workers:
        w.close()


def test_deadline_round_closes_on_the_real_timer(relay):
    s = _create(relay, quorum=2, round_seconds=0.8, grace_seconds=0.4)
    w = Worker(relay, s["session_id"], "solo")
    w.pump("weights")
    w.pump("submit_request")
    w.ws.send(w.client.delta_frame(np.full(s["param_count"], 1e-3, "<f2").tobytes(), tokens=8, loss=1.0))
    assert w.pump("round_closed")["contributors"] == 1
    w.close()


def test_foreign_origin_is_refused_at_the_handshake(relay):
    with pytest.raises(InvalidStatus) as e:
        with connect(_ws_url(relay), origin="http://evil.example", open_timeout=5):
            pass
    assert e.value.response.status_code == 403
    with connect(_ws_url(relay), origin=relay, open_timeout=5) as ok:  # the relay's own origin
        ok.send(json.dumps({"type": "loss_ping", "loss": 1, "tokens": 1}))
        assert json.loads(ok.recv(timeout=5))["reason"] == "not_joined"


def test_oversize_binary_frame_closes_with_1009(relay):
    s = _create(relay)
    w = Worker(relay, s["session_id"], "big")
    w.pump("weights")
    w.ws.send(b"TGPT" + b"\0" * (HEADER_SIZE + 4 * s["param_count"]))
    with pytest.raises(ConnectionClosed) as e:
        while True:
            w.ws.recv(timeout=5)
    assert e.value.rcvd.code == 1009


def test_no_auth_message_times_out(relay):
    with connect(_ws_url(relay), open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["reason"] == "auth_timeout"
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=5)
        assert e.value.rcvd.code == 1008


def _raw_join(base: str, session_id: str) -> socket.socket:
    """A client that completes the handshake and joins, then never reads or answers a ping."""
    port = int(base.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    assert b" 101 " in sock.recv(4096).split(b"\r\n")[0]
    payload = json.dumps({"type": "join", "session_id": session_id, "name": "ghost"}).encode()
    mask = os.urandom(4)
    sock.sendall(struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


def test_a_peer_that_stops_answering_pings_is_dropped(relay):
    s = _create(relay, quorum=2, round_seconds=30, grace_seconds=5)
    watcher = Worker(relay, s["session_id"], "watcher")
    watcher.pump("weights")
    watcher.pump("clients_changed")  # its own arrival
    ghost = _raw_join(relay, s["session_id"])
    try:
        names = [c["name"] for c in watcher.pump("clients_changed")["clients"]]
        assert names == ["watcher", "ghost"]
        start = time.monotonic()
        names = [c["name"] for c in watcher.pump("clients_changed")["clients"]]
        assert names == ["watcher"] and time.monotonic() - start < 4.0
    finally:
        ghost.close()
        watcher.close()


def test_disconnect_mid_frame_leaves_the_others_round_intact(relay):
    s = _create(relay, quorum=1, round_seconds=30, grace_seconds=5)
    watcher = Worker(relay, s["session_id"], "watcher")
    watcher.pump("weights")
    watcher.pump("clients_changed")
    quitter = _raw_join(relay, s["session_id"])
    assert len(watcher.pump("clients_changed")["clients"]) == 2
    # a masked binary frame announcing 1 MiB, cut off after 100 bytes
    quitter.sendall(struct.pack("!BBQ", 0x82, 0x80 | 127, 1 << 20) + os.urandom(4) + os.urandom(100))
    quitter.close()
    assert [c["name"] for c in watcher.pump("clients_changed")["clients"]] == ["watcher"]
    watcher.ws.send(watcher.client.delta_frame(np.full(s["param_count"], 1e-3, "<f2").tobytes(), tokens=8, loss=1.0))
    assert watcher.pump("round_closed")["contributors"] == 1
    watcher.close()


def test_sigterm_closes_with_1012_and_a_restart_keeps_committed_rounds(tmp_path):
    port = free_port()
    with relay_process(tmp_path, port) as (proc, base):
        s = _create(base, quorum=1)
        w = Worker(base, s["session_id"], "keeper")
        w.pump("weights")
        w.ws.send(w.client.delta_frame(np.full(s["param_count"], 1e-3, "<f2").tobytes(), tokens=8, loss=1.0))
        closed = w.pump("update")
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as e:
            while True:
                w.ws.recv(timeout=5)
        assert e.value.rcvd.code == 1012
        assert proc.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after its shutdown
    with relay_process(tmp_path, port) as (_, base):
        status = httpx.get(f"{base}/api/sessions/{s['session_id']}").json()
        assert status["round"] == 1 and status["weights_sha256"] == closed["weights_sha256"]
        again = Worker(base, s["session_id"], "keeper", token=w.client.client_token)
        ack = again.pump("join_ack")
        assert ack["client_id"] == w.client.client_id and ack["round"] == 1
        again.pump("weights")
        assert _sha(again.weights) == closed["weights_sha256"]
        again.close()
