"""The client side of the relay protocol, without any transport: no socket library inside.

The native worker feeds it frames from `websockets`; the browser feeds it frames from a JS
WebSocket through Pyodide. Both send what it builds and act on the events it returns:

    client = RelayClient(session_id, name="tab-1")
    ws.send(client.join_message())
    for each frame received:
        event = client.on_text(text) or client.on_binary(data)
        "join_ack"       -> client.config, client.round, client.data_seed are set
        "weights"        -> load event.payload (f32 LE) as W_round; check client.check_weights(sha)
        "round_started"  -> train on a new data_seed (client.data_seed) for round client.round
        "submit_request" -> send client.delta_frame(delta, tokens, loss) soon
        "update"         -> W += decode(event.payload) in f32; check client.check_weights(sha)
Pure Python: imports on CPython and in Pyodide without numpy.
"""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass, field

from .frames import (
    DTYPE_F16,
    KIND_DELTA,
    KIND_UPDATE,
    KIND_WEIGHTS,
    FrameError,
    FrameHeader,
    apply_update,
    decode_payload,
    encode_frame,
    f32_bytes,
    split_frame,
    weights_sha256,
)


class RelayProtocolError(ValueError):
    """The relay sent something this client cannot make sense of (or the weights diverged)."""


@dataclass
class ClientEvent:
    type: str  # a server message type, or "weights" / "update" for binary frames
    message: dict = field(default_factory=dict)
    header: FrameHeader | None = None
    payload: memoryview | None = None  # little-endian elements of header.dtype


class RelayClient:
    def __init__(self, session_id: str, name: str = "", client_token: str | None = None,
                 join_secret: str | None = None):
        self.session_id, self.name, self.client_token = session_id, name, client_token
        self.join_secret = join_secret  # the session's join secret (from its share link), if it has one
        self.client_id: str | None = None
        self.config: dict | None = None
        self.round: int | None = None  # the open round: W_round is what we train from
        self.data_seed: int | None = None
        self.deadline_ms: int | None = None
        self.clients: list[dict] = []
        self.submitted_round: int | None = None
        self.expected_sha256: str | None = None  # of the weights we should hold after the next frame
        self._pending_update: dict | None = None  # round_closed waiting for its UPDATE frame
        self.closed = False

    # --- messages to send ----------------------------------------------------------------------

    def join_message(self) -> str:
        msg = {"type": "join", "session_id": self.session_id, "name": self.name}
        if self.client_token:
            msg["client_token"] = self.client_token
        if self.join_secret:
            msg["join_secret"] = self.join_secret
        return json.dumps(msg)

    def loss_ping(self, loss: float, tokens: int) -> str:
        return json.dumps({"type": "loss_ping", "loss": float(loss), "tokens": int(tokens)})

    def delta_frame(self, delta, tokens: int, loss: float, dtype: int = DTYPE_F16) -> bytes:
        """DELTA for the open round: `delta` is (P,) floats, or little-endian bytes of `dtype`."""
        if self.round is None:
            raise RelayProtocolError("not joined yet")
        self.submitted_round = self.round
        return encode_frame(KIND_DELTA, dtype, delta, round=self.round, tokens=tokens, loss=loss)

    @property
    def param_count(self) -> int:
        if self.config is None:
            raise RelayProtocolError("not joined yet")
        return int(self.config["param_count"])

    @property
    def can_submit(self) -> bool:
        return self.round is not None and self.submitted_round != self.round and not self.closed

    # --- frames received -----------------------------------------------------------------------

    def on_text(self, text: str) -> ClientEvent:
        try:
            msg = json.loads(text)
        except ValueError:
            raise RelayProtocolError("relay sent invalid JSON") from None
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise RelayProtocolError("relay message has no type")
        kind = msg["type"]
        if kind == "join_ack":
            self.client_id, self.client_token = msg["client_id"], msg["client_token"]
            self.config, self.round, self.data_seed = msg["config"], msg["round"], msg["data_seed"]
            self.deadline_ms, self.expected_sha256 = msg.get("deadline_ms"), msg["weights_sha256"]
        elif kind == "round_started":
            self.round, self.data_seed, self.deadline_ms = msg["round"], msg["data_seed"], msg["deadline_ms"]
        elif kind == "submit_request":
            self.deadline_ms = msg["deadline_ms"]
        elif kind == "round_closed":
            self._pending_update = msg
        elif kind == "clients_changed":
            self.clients = list(msg["clients"])
        elif kind == "session_closed":
            self.closed = True
        return ClientEvent(kind, msg)

    def on_binary(self, data: bytes | bytearray | memoryview) -> ClientEvent:
        try:
            header, payload = split_frame(data)
        except FrameError as e:
            raise RelayProtocolError(f"bad frame from relay: {e}") from None
        if self.config is not None and header.count != self.param_count:
            raise RelayProtocolError(f"frame has {header.count} elements, the model has {self.param_count}")
        if header.kind == KIND_WEIGHTS:
            return ClientEvent("weights", header=header, payload=payload)
        if header.kind == KIND_UPDATE:
            pending = self._pending_update
            if pending is None or pending["round"] != header.round:
                raise RelayProtocolError(f"UPDATE for round {header.round} without its round_closed")
            self._pending_update = None
            self.expected_sha256 = pending["weights_sha256"]
            self.round = pending["next_round"]
            return ClientEvent("update", pending, header=header, payload=payload)
        raise RelayProtocolError("relay sent a DELTA frame")

    def check_weights(self, sha256_hex: str) -> None:
        """Raise unless the weights we now hold are bit-identical to the relay's."""
        if self.expected_sha256 is not None and sha256_hex != self.expected_sha256:
            raise RelayProtocolError(f"weights diverged from the relay's: {sha256_hex} != {self.expected_sha256}")


class PureWeights:
    """The global weights as an array('f'), for hosts without numpy (slow for big models)."""

    def __init__(self, values: array):
        self.values = values

    @classmethod
    def from_frame(cls, event: ClientEvent) -> "PureWeights":
        return cls(decode_payload(event.payload, event.header.dtype))

    def apply(self, event: ClientEvent) -> None:
        apply_update(self.values, decode_payload(event.payload, event.header.dtype))

    def sha256(self) -> str:
        return weights_sha256(f32_bytes(self.values))
