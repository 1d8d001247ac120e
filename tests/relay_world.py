"""Shared test fixtures for the relay tests: a fake clock, an in-process relay, frame helpers."""

from __future__ import annotations

import contextlib
import json

import anyio
import numpy as np
from starlette.testclient import TestClient

from pyscript_app.federated.frames import DTYPE_F16, KIND_DELTA, encode_frame
from server.app import create_app
from server.settings import RelaySettings


class FakeClock:
    """Seconds on a clock that moves only when a test says so."""

    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def delta_frame(values: np.ndarray, round: int, tokens: int, loss: float = 2.0, dtype: int = DTYPE_F16) -> bytes:
    """A DELTA frame of (P,) values in f16 (default) or f32."""
    np_dtype = "<f2" if dtype == DTYPE_F16 else "<f4"
    return encode_frame(KIND_DELTA, dtype, values.astype(np_dtype).tobytes(), round=round, tokens=tokens, loss=loss)


def recv(ws, timeout: float = 5.0):
    """Next frame from a TestClient websocket: a dict for JSON text, bytes for binary.

    Raises WebSocketDisconnect on a close, TimeoutError instead of hanging forever."""

    async def _next():
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    message = ws.portal.call(_next)
    ws._raise_on_close(message)
    if message.get("text") is not None:
        return json.loads(message["text"])
    return message["bytes"]


def recv_type(ws, kind: str) -> dict:
    msg = recv(ws)
    assert isinstance(msg, dict) and msg["type"] == kind, f"expected {kind}, got {msg!r:.300}"
    return msg


def recv_until(ws, kind: str) -> tuple[list, dict]:
    """(frames before it, the first message of `kind`)."""
    before = []
    while True:
        msg = recv(ws)
        if isinstance(msg, dict) and msg["type"] == kind:
            return before, msg
        before.append(msg)


def sync(ws) -> list:
    """Frames queued for ws before now: a loss_ping's live_loss reply comes after all of them."""
    ws.send_text(json.dumps({"type": "loss_ping", "loss": 1.0, "tokens": 1}))
    before, _ = recv_until(ws, "live_loss")
    return before


class World:
    def __init__(self, client: TestClient, clock: FakeClock):
        self.client, self.clock = client, clock
        self.relay = client.app.state.relay

    def create(self, **body) -> dict:
        body = {"model": "nano", "dataset": "names", **body}
        response = self.client.post("/api/sessions", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def connect(self, **headers):
        return self.client.websocket_connect("/ws", headers=headers)

    def join(self, ws, session_id: str, name: str = "w", token: str | None = None) -> tuple[dict, bytes]:
        """Send join; return (join_ack, WEIGHTS frame), consuming the joiner's clients_changed."""
        msg = {"type": "join", "session_id": session_id, "name": name}
        if token:
            msg["client_token"] = token
        ws.send_text(json.dumps(msg))
        ack = recv_type(ws, "join_ack")
        weights = recv(ws)
        assert isinstance(weights, bytes)
        if ack["phase"] == "grace":
            recv_type(ws, "submit_request")
        recv_type(ws, "clients_changed")
        return ack, weights

    def tick(self, dt: float = 0.0) -> None:
        self.clock.advance(dt)
        self.client.portal.call(self.relay.tick)

    def status(self, session_id: str) -> dict:
        response = self.client.get(f"/api/sessions/{session_id}")
        assert response.status_code == 200, response.text
        return response.json()


@contextlib.contextmanager
def relay_world(state_dir=None, clock: FakeClock | None = None, **overrides):
    clock = clock or FakeClock()
    overrides.setdefault("allowed_hosts", ("testserver", "localhost"))  # TestClient's Host is testserver
    settings = RelaySettings(state_dir=str(state_dir) if state_dir else None, **overrides)
    app = create_app(settings, clock=clock, run_ticker=False)
    with TestClient(app) as client:
        yield World(client, clock)
