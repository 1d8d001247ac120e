"""Attacks on a real relay process (uvicorn on loopback), each checking that the relay holds (issue 23).

One relay serves the whole module (fast pings, short retries); tests use their own sessions.
"""

from __future__ import annotations

import base64
import os
import resource
import signal
import socket
import time

import httpx
import numpy as np
import pytest

from _relay_process import relay_log
from _relay_process import relay_process as _relay_process
from test_server_uvicorn import FAST_ENV, Worker

pytestmark = pytest.mark.timeout(60)

ENV = {**FAST_ENV, "TABGPT_RELAY_CLOSE_RETRY_S": "0.1", "TABGPT_RELAY_CLOSE_RETRY_MAX_S": "0.2"}
NANO_CHECKPOINT_BYTES = 36_144 * 4  # a nano checkpoint is at least its f32 weights


def _ignore_sigxfsz() -> None:
    # a write over RLIMIT_FSIZE then fails with EFBIG (as on a full disk) instead of killing the relay
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    with _relay_process(tmp_path_factory.mktemp("attack-state"), env=ENV, preexec_fn=_ignore_sigxfsz) as (proc, base):
        yield proc, base


def _create(base: str, **body) -> dict:
    r = httpx.post(base + "/api/sessions", json={"model": "nano", "dataset": "names", **body})
    assert r.status_code == 201, r.text
    return r.json()


def _delta(s: dict, seed: int = 0, scale: float = 1e-3) -> bytes:
    return (np.random.default_rng(seed).standard_normal(s["param_count"]) * scale).astype("<f2").tobytes()


def _no_message_of(worker: Worker, kind: str, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            frame = worker.ws.recv(timeout=left)
        except TimeoutError:
            return True
        if worker._handle(frame).type == kind:
            return False
    return True


# --- 3: a failed round close is logged and retried; it stops no timer; a session is saved first ----------------


def test_a_full_disk_delays_closes_but_stops_no_timer_and_creates_nothing(relay):
    proc, base = relay
    a = _create(base, quorum=1, round_seconds=30, grace_seconds=5)
    b = _create(base, quorum=2, round_seconds=1.0, grace_seconds=0.5)
    wa, wb = Worker(base, a["session_id"], "a"), Worker(base, b["session_id"], "b")
    wa.pump("weights")
    wb.pump("weights")
    sessions_before = httpx.get(base + "/api/health").json()["sessions"]
    _, hard = resource.prlimit(proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (NANO_CHECKPOINT_BYTES // 2, hard))  # the disk is full
    try:
        wa.ws.send(wa.client.delta_frame(_delta(a), tokens=8, loss=1.0))
        assert wa.pump("submit_ack")["submissions"] == 1
        assert _no_message_of(wa, "round_closed", 0.5)  # its checkpoint cannot be written: no broadcast
        assert "closing round 0 of session " + a["session_id"] in relay_log(proc)
        r = httpx.post(base + "/api/sessions", json={"model": "nano", "dataset": "names"})
        assert r.status_code == 503
        assert httpx.get(base + "/api/health").json()["sessions"] == sessions_before  # nothing half-made
    finally:
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, hard))  # space is back
    assert wa.pump("round_closed")["contributors"] == 1  # retried
    wb.pump("submit_request")  # b's timer still runs: its deadline closes its round
    wb.ws.send(wb.client.delta_frame(_delta(b), tokens=8, loss=1.0))
    assert wb.pump("round_closed")["contributors"] == 1
    for w in (wa, wb):
        w.close()


# --- 2: round hijack: a join secret, opt-in listing, a robust aggregate -------------------------------------------


def _forged(s: dict) -> bytes:
    """The largest delta the norm check lets through, with the most tokens a delta may claim."""
    return np.full(s["param_count"], 0.99, "<f2").tobytes()


def _max_tokens(s: dict) -> int:
    c = s["config"]
    return c["batch"] * c["blocksize"] * c["max_local_steps"]


def _weights(base: str, sid: str) -> np.ndarray:
    return np.frombuffer(httpx.get(f"{base}/api/sessions/{sid}/weights").content[28:], "<f4").astype(np.float64)


def test_without_the_join_secret_fake_clients_cannot_join_or_find_the_session(relay):
    _, base = relay
    s = _create(base, quorum=2, round_seconds=30, grace_seconds=5, require_join_secret=True)
    sid, secret = s["session_id"], s["join_secret"]
    assert sid not in [x["session_id"] for x in httpx.get(base + "/api/sessions").json()["sessions"]]
    w0 = _weights(base, sid)
    fakes = [Worker(base, sid, f"fake{i}") for i in range(2)]  # no secret
    for fake in fakes:
        assert fake.pump("error")["reason"] == "bad_secret"
        fake.close()
    honest = [Worker(base, sid, f"h{i}", join_secret=secret) for i in range(2)]
    for i, h in enumerate(honest):
        h.pump("weights")
        h.ws.send(h.client.delta_frame(_delta(s, i), tokens=64, loss=2.0))
    closed = honest[0].pump("round_closed")
    assert closed["contributors"] == 2  # the honest deltas made the round
    moved = np.linalg.norm(_weights(base, sid) - w0)
    assert moved <= 1e-3 * np.sqrt(s["param_count"]) * 1.01  # no more than an honest delta's norm
    resumed = Worker(base, sid, "h0", token=honest[0].client.client_token)  # a resume needs no secret
    assert resumed.pump("join_ack")["client_id"] == honest[0].client.client_id
    for w in (*honest, resumed):
        w.close()


def test_a_forged_maximal_delta_moves_the_weights_no_further_than_an_honest_one(relay):
    _, base = relay
    s = _create(base, quorum=3, round_seconds=30, grace_seconds=5)  # an open session: the attacker is in
    sid = s["session_id"]
    w0 = _weights(base, sid)
    clients = [Worker(base, sid, name) for name in ("h0", "h1", "attacker")]
    for w in clients:
        w.pump("weights")
    honest = [_delta(s, 1, 1e-3), _delta(s, 2, 2e-3)]
    clients[2].ws.send(clients[2].client.delta_frame(_forged(s), tokens=_max_tokens(s), loss=0.0))
    assert clients[2].pump("submit_ack")["submissions"] == 1
    for w, d in zip(clients, honest):
        w.ws.send(w.client.delta_frame(d, tokens=64, loss=2.0))
    assert clients[0].pump("round_closed")["contributors"] == 3  # the honest deltas count
    norms = sorted(np.linalg.norm(np.frombuffer(d, "<f2").astype(np.float64)) for d in honest)
    moved = np.linalg.norm(_weights(base, sid) - w0)
    assert moved <= norms[0] * 1.01  # clipped to the median norm: 2.6e-1 unclipped, about 0.19 here
    timeline = httpx.get(f"{base}/api/sessions/{sid}").json()["timeline"]
    weights = {t["name"]: t["weight"] for t in timeline if t["event"] == "delta"}
    assert weights == {"h0": pytest.approx(1 / 3), "h1": pytest.approx(1 / 3), "attacker": pytest.approx(1 / 3)}
    for w in clients:
        w.close()


# --- 7: DNS rebinding and cross-site creates ---------------------------------------------------------------------


def _handshake_status(base: str, host: str, origin: str) -> int:
    """The HTTP status a WebSocket handshake with these Host and Origin headers gets."""
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        return int(sock.recv(4096).split(b"\r\n")[0].split()[1])


def test_a_rebound_host_name_and_a_cross_site_create_are_refused(relay):
    _, base = relay
    port = base.rsplit(":", 1)[1]
    evil = f"evil.example:{port}"
    assert _handshake_status(base, evil, f"http://{evil}") == 403  # DNS rebinding: the page's own origin
    assert _handshake_status(base, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}") == 101
    assert httpx.get(base + "/api/health", headers={"Host": evil}).status_code == 400
    before = httpx.get(base + "/api/health").json()["sessions"]
    body = '{"model": "nano", "dataset": "names"}'
    plain = httpx.post(base + "/api/sessions", content=body, headers={"Content-Type": "text/plain",
                                                                        "Origin": "http://evil.example"})
    assert plain.status_code == 415
    foreign = httpx.post(base + "/api/sessions", content=body, headers={"Content-Type": "application/json",
                                                                          "Origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert httpx.get(base + "/api/health").json()["sessions"] == before  # nothing was created
    page = httpx.post(base + "/api/sessions", content=body, headers={"Content-Type": "application/json",
                                                                       "Origin": "http://localhost:8000"})
    assert page.status_code == 201  # the site's page on localhost still creates sessions


# --- 8: a session's data set name never makes a worker read a local file -----------------------------------------


def test_a_dataset_path_is_refused_by_the_relay_and_by_the_worker(relay, tmp_path, monkeypatch):
    _, base = relay
    for name in ("secret.txt", "../home/user/notes.txt", "wiki"):
        r = httpx.post(base + "/api/sessions", json={"model": "nano", "dataset": name})
        assert r.status_code == 422 and "dataset must be one of names, shakespeare" in r.json()["detail"]
    # a relay that sent one anyway (an old checkpoint, a hostile relay): the worker opens nothing
    from pyscript_app.errors import UserError
    from pyscript_app.federated.worker_session import load_session_data

    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.txt").write_text("the worker's private text\n" * 100)
    with pytest.raises(UserError, match="not one of names, shakespeare"):
        load_session_data({"dataset": "secret.txt", "model_config": {"vocab_size": 1024}, "blocksize": 16}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.txt"]  # nothing prepared from it
