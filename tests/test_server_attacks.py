"""Attacks on a real relay process (uvicorn on loopback), each checking that the relay holds (issue 23).

One relay serves the whole module (short retries, 4 clients per session, pings slow enough that
a client may pause reading for a second); tests use their own sessions.
"""

from __future__ import annotations

import base64
import json
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
from test_server_uvicorn import FAST_ENV, Worker, _ws_url
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(60)

ENV = {**FAST_ENV, "TABGPT_RELAY_CLOSE_RETRY_S": "0.1", "TABGPT_RELAY_CLOSE_RETRY_MAX_S": "0.2",
       "TABGPT_RELAY_PING_INTERVAL_S": "3", "TABGPT_RELAY_PING_TIMEOUT_S": "3",
       "TABGPT_RELAY_MAX_CLIENTS_PER_SESSION": "4", "TABGPT_RELAY_HISTORY_KEEP": "4",
       "TABGPT_RELAY_MESSAGE_TIMEOUT_S": "1", "TABGPT_RELAY_SEND_TIMEOUT_S": "2",
       "TABGPT_RELAY_CLOSE_GRACE_S": "0.5"}
MAX_CLIENTS = 4  # so a roster keeps 16 clients
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


# --- 6: join/leave churn: chatter supersedes, live tokens are not evicted, the cap holds on resume --------------


def _join(base: str, sid: str, name: str, token: str | None = None) -> dict:
    """Join (or resume), read the answer, leave at once: the join_ack or the refusal."""
    with connect(_ws_url(base), open_timeout=5, max_size=None, max_queue=None) as ws:
        msg = {"type": "join", "session_id": sid, "name": name}
        if token:
            msg["client_token"] = token
        ws.send(json.dumps(msg))
        return json.loads(ws.recv(timeout=5))


def _raw_socket(base: str, rcvbuf: int | None = None) -> socket.socket:
    """A WebSocket after its handshake, as a plain socket: the test decides what to send and read."""
    port = int(base.rsplit(":", 1)[1])
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    assert b" 101 " in sock.recv(4096).split(b"\r\n")[0]
    return sock


def _frame_head(opcode: int, length: int, fin: bool = True) -> bytes:
    """A client frame's header (masked, with a zero mask: the payload then goes as it is)."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return bytes([first, 0x80 | length]) + b"\0" * 4
    if length < 65536:
        return bytes([first, 0x80 | 126]) + length.to_bytes(2, "big") + b"\0" * 4
    return bytes([first, 0x80 | 127]) + length.to_bytes(8, "big") + b"\0" * 4


def _masked(opcode: int, payload: bytes) -> bytes:
    return _frame_head(opcode, len(payload)) + payload


def _close_code(sock: socket.socket, timeout: float) -> int | None:
    """Read server frames until a close frame: its code; None when none came in time."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while True:
            while len(buf) < 2 or len(buf) < _server_frame_size(buf):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    return None
                buf += chunk
            size = _server_frame_size(buf)
            if buf[0] & 0x0F == 0x8:
                return int.from_bytes(buf[size - (buf[1] & 0x7F) : size - (buf[1] & 0x7F) + 2], "big")
            buf = buf[size:]
    except (TimeoutError, socket.timeout, ConnectionResetError):
        return None


def _server_frame_size(buf: bytes) -> int:
    n = buf[1] & 0x7F
    if n == 126:
        return 4 + int.from_bytes(buf[2:4], "big") if len(buf) >= 4 else 1 << 62
    if n == 127:
        return 10 + int.from_bytes(buf[2:10], "big") if len(buf) >= 10 else 1 << 62
    return 2 + n


def _connected(base: str, sid: str) -> list[str]:
    return [c["name"] for c in httpx.get(f"{base}/api/sessions/{sid}").json()["clients"]]


def test_a_burst_of_joins_evicts_no_client_that_may_still_resume(relay):
    _, base = relay
    sid = _create(base, quorum=2, round_seconds=30, grace_seconds=5)["session_id"]
    token = _join(base, sid, "honest")["client_token"]  # then a brief disconnect
    answers = [_join(base, sid, f"churn{i}") for i in range(4 * MAX_CLIENTS)]  # a roster's worth
    assert [a["type"] for a in answers[:-1]] == ["join_ack"] * (4 * MAX_CLIENTS - 1)
    assert answers[-1]["reason"] == "session_full"  # the roster is full of tokens that may resume
    assert _join(base, sid, "honest", token)["type"] == "join_ack"  # the honest client resumes


def test_resumes_cannot_pass_the_session_cap(relay):
    _, base = relay
    sid = _create(base, quorum=2, round_seconds=30, grace_seconds=5)["session_id"]
    tokens = [_join(base, sid, f"old{i}")["client_token"] for i in range(MAX_CLIENTS)]
    present = [Worker(base, sid, f"new{i}") for i in range(MAX_CLIENTS)]
    for w in present:
        w.pump("join_ack")
    assert [_join(base, sid, "old", t).get("reason") for t in tokens] == ["session_full"] * MAX_CLIENTS
    assert sorted(_connected(base, sid)) == [f"new{i}" for i in range(MAX_CLIENTS)]
    for w in present:
        w.close()


def test_join_leave_chatter_does_not_drop_a_client_busy_downloading(relay):
    _, base = relay
    sid = _create(base, model="small", quorum=2, round_seconds=30, grace_seconds=5)["session_id"]  # 4.2 MB weights
    reader = _raw_socket(base, rcvbuf=4096)  # a slow link: the weights take a while
    reader.sendall(_masked(0x81, json.dumps({"type": "join", "session_id": sid, "name": "downloader"}).encode()))
    deadline = time.monotonic() + 5
    while "downloader" not in _connected(base, sid):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for i in range(12):  # 24 clients_changed, more than the 16 frames a queue holds
        _join(base, sid, f"churn{i}")
    time.sleep(0.2)
    try:
        assert _connected(base, sid) == ["downloader"]  # not dropped as a slow reader
    finally:
        reader.close()


# --- 9: the round history stays bounded however many rounds a session runs ---------------------------------------


def test_a_long_running_session_keeps_a_bounded_summarised_history(relay):
    _, base = relay
    s = _create(base, quorum=1, round_seconds=30, grace_seconds=5)
    w = Worker(base, s["session_id"], "solo")
    w.pump("weights")
    rounds = 30
    for r in range(rounds):
        w.ws.send(w.client.delta_frame(_delta(s, r), tokens=8, loss=float(r)))
        assert w.pump("update")["round"] == r
    history = httpx.get(f"{base}/api/sessions/{s['session_id']}").json()["history"]
    assert len(history) <= 2 * 4  # TABGPT_RELAY_HISTORY_KEEP=4
    assert sum(h.get("rounds", 1) for h in history) == rounds and sum(h["tokens"] for h in history) == 8 * rounds
    assert [h["round"] for h in history[-4:]] == [26, 27, 28, 29] and history[0]["round"] == 0
    spans = [h["round"] for h in history] + [rounds]
    assert all(h.get("rounds", 1) == b - a for h, a, b in zip(history, spans, spans[1:]))  # no gap, no overlap
    # a merged entry's loss is the tokens-weighted mean of its rounds (here: the mean of their numbers)
    assert all(h["loss"] == pytest.approx(h["round"] + (h.get("rounds", 1) - 1) / 2) for h in history)
    w.close()


# --- 10: crafted checkpoints are skipped with a log line; the relay starts -----------------------------------------


def _checkpoint_file(head: bytes, data: bytes = b"") -> bytes:
    from server.storage import MAGIC, PREFIX, VERSION

    prefix = PREFIX.pack(MAGIC, VERSION, len(head))
    return prefix + head + b"\0" * ((-len(prefix) - len(head)) % 64) + data


def test_crafted_checkpoints_are_skipped_and_the_relay_starts(tmp_path):
    import hashlib

    from server.hub import Relay
    from server.settings import RelaySettings
    from server.storage import encode_checkpoint

    relay = Relay(RelaySettings(state_dir=str(tmp_path)))
    config = relay.new_config({"model": "nano", "dataset": "names"})
    good, _ = relay.add_session(config, relay.initial_weights(config))
    good.history = [{"round": r, "loss": 2.0, "contributors": 1, "tokens": 8} for r in range(3000)]  # an old relay's
    good.round = 3000
    relay._save(good)
    folder = tmp_path / "sessions"
    header, arrays = good.checkpoint()
    crafted = {
        "deep": _checkpoint_file(b"[" * 200_000 + b"]" * 200_000),
        "listname": _checkpoint_file(json.dumps({"session_id": "l" * 32, "arrays": [
            {"name": ["weights"], "dtype": "<f4", "count": 1, "offset": 0,
             "sha256": hashlib.sha256(b"\0" * 4).hexdigest()}]}).encode(), b"\0" * 4),
        "types": b"".join(encode_checkpoint({**header, "session_id": "t" * 32, "round": "3000"}, arrays)),
        "config": b"".join(encode_checkpoint({**header, "session_id": "q" * 32,
                                              "config": {**header["config"], "quorum": 10**6}}, arrays)),
        "renamed": (folder / f"{good.session_id}.tgck").read_bytes(),  # names another session than its file
    }
    names = {"deep": "d" * 32, "listname": "l" * 32, "types": "t" * 32, "config": "q" * 32, "renamed": "r" * 32}
    for kind, raw in crafted.items():
        (folder / f"{names[kind]}.tgck").write_bytes(raw)
    with _relay_process(tmp_path, env={**ENV, "TABGPT_RELAY_HISTORY_KEEP": "100"}) as (proc, base):
        assert httpx.get(base + "/api/health").json()["sessions"] == 1
        status = httpx.get(f"{base}/api/sessions/{good.session_id}").json()
        assert status["round"] == 3000 and len(status["history"]) <= 200  # summarised on load
        assert sum(h.get("rounds", 1) for h in status["history"]) == 3000
        log = relay_log(proc)
    for name in names.values():
        assert f"skipping checkpoint {name}.tgck" in log or f"skipping checkpoint of {name}" in log, name


# --- 11: one session's long close does not hold up another session's submissions --------------------------------


def test_a_slow_close_in_one_session_does_not_delay_another_sessions_ack(relay):
    import threading

    _, base = relay
    busy = _create(base, model="medium", quorum=2, round_seconds=30, grace_seconds=5)  # 5.3M parameters
    other = _create(base, quorum=2, round_seconds=30, grace_seconds=5)
    crowd = [Worker(base, busy["session_id"], f"a{i}") for i in range(4)]
    honest = Worker(base, other["session_id"], "honest")
    for w in (*crowd, honest):
        w.pump("weights")
    frames = [w.client.delta_frame(np.full(busy["param_count"], 1e-4 * (i + 1), "<f2").tobytes(), tokens=8, loss=1.0)
              for i, w in enumerate(crowd)]
    closed_at = []
    watcher = threading.Thread(target=lambda: (crowd[0].pump("round_closed"), closed_at.append(time.monotonic())))
    watcher.start()
    for w, f in zip(crowd, frames):  # two close the round; two more wait for its lock meanwhile
        w.ws.send(f)
    time.sleep(0.05)  # the busy session's close is under way
    honest.ws.send(honest.client.delta_frame(_delta(other), tokens=8, loss=1.0))
    honest.pump("submit_ack")
    acked_at = time.monotonic()
    watcher.join(30)
    assert acked_at < closed_at[0]  # answered while the other session was still closing its round
    httpx.delete(f"{base}/api/sessions/{busy['session_id']}",
                 headers={"Authorization": "Bearer " + busy["owner_token"]})
    for w in (*crowd, honest):
        w.close()


# --- 5: the receive limit follows what a connection may send; a message has a deadline --------------------------


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_oversize_frames_are_refused_at_their_header_and_a_trickled_message_times_out(relay):
    proc, base = relay
    s = _create(base, quorum=2, round_seconds=30, grace_seconds=5)
    frame_limit = 28 + 4 * s["param_count"]
    # unjoined: 110 MB announced; the relay closes at the header, having buffered none of it
    rss = _rss_mb(proc.pid)
    socks = [_raw_socket(base) for _ in range(6)]
    for sock in socks:
        sock.sendall(_frame_head(0x2, 110 << 20))
    for sock in socks:
        assert _close_code(sock, 2.0) == 1009
        try:
            sock.sendall(b"\0" * (1 << 20))  # the relay reads no more of it
        except OSError:
            pass
        sock.close()
    assert _rss_mb(proc.pid) < rss + 20
    # joined: one byte over the session's exact f32 DELTA size is refused at the header too
    over = _raw_socket(base)
    over.sendall(_masked(0x1, json.dumps({"type": "join", "session_id": s["session_id"], "name": "big"}).encode()))
    time.sleep(0.2)
    over.sendall(_frame_head(0x2, frame_limit + 1))
    assert _close_code(over, 2.0) == 1009
    over.close()
    # joined: a DELTA of the right size, trickled and then stalled, is cut off at its deadline
    honest = Worker(base, s["session_id"], "honest")
    honest.pump("weights")
    slow = _raw_socket(base)
    slow.sendall(_masked(0x1, json.dumps({"type": "join", "session_id": s["session_id"], "name": "slow"}).encode()))
    time.sleep(0.2)
    slow.sendall(_frame_head(0x2, 28 + 2 * s["param_count"]) + b"TGPT" + b"\0" * 1000)
    start = time.monotonic()
    honest.ws.send(honest.client.delta_frame(_delta(s), tokens=8, loss=1.0))
    assert honest.pump("submit_ack")["submissions"] == 1  # the honest client is served meanwhile
    assert _close_code(slow, 5.0) == 1008  # TABGPT_RELAY_MESSAGE_TIMEOUT_S=1
    assert 0.9 < time.monotonic() - start < 4.0
    slow.close()
    honest.close()


# --- 1: clients that never read: chunked sends with a deadline, then an abort that frees the memory --------------


def test_clients_that_never_read_are_cut_off_and_their_memory_freed(relay):
    proc, base = relay
    s = _create(base, model="medium", quorum=1, round_seconds=30, grace_seconds=5)  # a 21 MB WEIGHTS frame
    sid = s["session_id"]
    honest = Worker(base, sid, "honest")
    honest.pump("weights")
    other = _create(base, quorum=1, round_seconds=30, grace_seconds=5)  # where the honest client's delta goes
    submitter = Worker(base, other["session_id"], "submitter")
    submitter.pump("weights")
    baseline = _rss_mb(proc.pid)
    port = int(base.rsplit(":", 1)[1])
    ghosts = []
    for i in range(8):  # joins that never read their weights
        ghost = _raw_socket(base, rcvbuf=4096)
        ghost.sendall(_masked(0x1, json.dumps({"type": "join", "session_id": sid, "name": f"ghost{i}"}).encode()))
        ghosts.append(ghost)
    for _ in range(4):  # weight downloads that are never read
        ghost = socket.socket()
        ghost.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ghost.connect(("127.0.0.1", port))
        ghost.sendall(f"GET /api/sessions/{sid}/weights HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        ghosts.append(ghost)
    time.sleep(0.5)
    assert _rss_mb(proc.pid) < baseline + 40  # about one 1 MiB chunk each, not a 21 MB copy each
    start = time.monotonic()
    submitter.ws.send(submitter.client.delta_frame(_delta(other), tokens=8, loss=1.0))
    assert submitter.pump("submit_ack")["submissions"] == 1
    assert time.monotonic() - start < 2.0
    time.sleep(3.0)  # TABGPT_RELAY_SEND_TIMEOUT_S=2, then TABGPT_RELAY_CLOSE_GRACE_S=0.5
    assert _connected(base, sid) == ["honest"]  # the ghosts were aborted at their write deadline
    assert _rss_mb(proc.pid) < baseline + 15, (baseline, _rss_mb(proc.pid))
    for ghost in ghosts:
        ghost.close()
    honest.close()
    submitter.close()
    httpx.delete(f"{base}/api/sessions/{sid}", headers={"Authorization": "Bearer " + s["owner_token"]})


# --- 4: buffer pools are freed when no session uses their size ---------------------------------------------------


def test_pools_of_deleted_model_sizes_are_freed(relay):
    proc, base = relay

    def cycle(vocab: int) -> None:  # create, submit, delete: a model size no other session has
        s = _create(base, model="medium", vocab_size=vocab, quorum=2, round_seconds=30, grace_seconds=5)
        w = Worker(base, s["session_id"], "cycler")
        w.pump("weights")
        w.ws.send(w.client.delta_frame(_delta(s), tokens=8, loss=1.0))
        assert w.pump("submit_ack")["submissions"] == 1
        w.close()
        r = httpx.delete(f"{base}/api/sessions/{s['session_id']}", headers={"Authorization": "Bearer " + s["owner_token"]})
        assert r.status_code == 200

    cycle(2000)  # the first one warms the relay's allocator up
    baseline = _rss_mb(proc.pid)
    for i in range(5):
        cycle(2048 + 512 * i)  # each a 5-6M-parameter model: its decode buffer alone is 22 MB or more
    assert _rss_mb(proc.pid) < baseline + 30, (baseline, _rss_mb(proc.pid))
