"""`tabgpt join`: real native workers (subprocesses) against the real relay (uvicorn on loopback).

The data set is prepared once into a temporary data dir (names, from the data mirror); each
worker runs `python -m pyscript_app.cli join ...` with the numpy backend and the nano preset.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from _relay_process import free_port, relay_process
from pyscript_app.config import ModelConfig
from pyscript_app.federated.frames import split_frame
from pyscript_app.reference import model
from pyscript_app.data.prepare import prepare_dataset
from pyscript_app.data.tokenfile import read_tokens
from pyscript_app.train.trainer import eval_starts, make_windows
from pyscript_app.federated.worker import ws_url
from pyscript_app.federated.numpy_model import f32_sha256

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(90)
ROUND_LINE = re.compile(r"^round (\d+)  local loss (\S+)  global loss (\S+)  tokens (\d+)/(\d+)  contributors (\d+)  "
                        r"sha256 ([0-9a-f]{64}) ok$")
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, data_mirror) -> Path:
    folder = tmp_path_factory.mktemp("worker-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TABGPT_DATA_MIRROR", str(data_mirror))
        stats = prepare_dataset("names", folder)
    (folder / "sha256").write_text(stats["tokenizer_sha256"])
    return folder


def _create(base: str, data_dir: Path, **body) -> dict:
    body = {"model": "nano", "dataset": "names", "tokenizer_sha256": (data_dir / "sha256").read_text(),
            "max_local_steps": 5, "round_seconds": 30, "grace_seconds": 5, **body}
    r = httpx.post(base + "/api/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _start_worker(base: str, session_id: str, data_dir: Path, name: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pyscript_app.cli", "join", base, "--session", session_id, "--name", name,
           "--data-dir", str(data_dir), "--backend", "numpy", *extra]
    return subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _round_lines(stdout: str) -> dict[int, dict]:
    out = {}
    for line in stdout.splitlines():
        m = ROUND_LINE.match(line)
        if m:
            out[int(m[1])] = {"tokens": int(m[4]), "total": int(m[5]), "contributors": int(m[6]), "sha": m[7]}
    return out


def _global_weights(base: str, session_id: str) -> np.ndarray:
    header, payload = split_frame(httpx.get(f"{base}/api/sessions/{session_id}/weights").content)
    return np.frombuffer(payload, "<f4").copy()


def _val_loss(weights: np.ndarray, data_dir: Path, config: dict) -> float:
    """Mean loss of the relay's weights on a fixed val slice (64 windows), numpy reference."""
    cfg = ModelConfig.from_dict(config["model_config"])
    val = read_tokens(data_dir / "names.val.bin")
    T = config["blocksize"]
    x, y = make_windows(val, eval_starts(len(val), T, 64), T)
    rows = lambda a: np.frombuffer(a, np.uint16).astype(np.int64).reshape(-1, T)
    loss, _ = model.forward(cfg, weights, rows(x), rows(y))
    return loss


class Observer(threading.Thread):
    """A plain client that joins and records the relay's round_closed messages (never submits)."""

    def __init__(self, base: str, session_id: str, rounds: int):
        super().__init__(daemon=True)
        self.url, self.session_id, self.rounds = ws_url(base), session_id, rounds
        self.closed: dict[int, dict] = {}
        self.joined = threading.Event()

    def run(self) -> None:
        with connect(self.url, open_timeout=5, max_size=None) as ws:
            ws.send(json.dumps({"type": "join", "session_id": self.session_id, "name": "observer"}))
            try:
                while len(self.closed) < self.rounds:
                    frame = ws.recv(timeout=60)
                    msg = json.loads(frame) if isinstance(frame, str) else {"type": "tensor"}
                    if msg["type"] == "join_ack":
                        self.joined.set()
                    elif msg["type"] == "round_closed":
                        self.closed[msg["round"]] = msg
            except (ConnectionClosed, TimeoutError):
                pass


def test_three_workers_train_five_rounds_with_identical_weights(data_dir):
    with relay_process() as (_, base):
        s = _create(base, data_dir, quorum=3)
        sid = s["session_id"]
        before = _val_loss(_global_weights(base, sid), data_dir, s["config"])
        observer = Observer(base, sid, rounds=5)
        observer.start()
        assert observer.joined.wait(10)
        workers = [_start_worker(base, sid, data_dir, f"w{i}", "--rounds", "5") for i in range(3)]
        results = [w.communicate(timeout=60) for w in workers]
        observer.join(10)
        status = httpx.get(f"{base}/api/sessions/{sid}").json()
        after_weights = _global_weights(base, sid)
    for w, (out, err) in zip(workers, results):
        assert w.returncode == 0, err
    per_worker = [_round_lines(out) for out, _ in results]
    tokens_per_round = 5 * s["config"]["batch"] * s["config"]["blocksize"]
    for r in range(5):
        relay_sha = observer.closed[r]["weights_sha256"]
        assert [lines[r]["sha"] for lines in per_worker] == [relay_sha] * 3
        assert all(lines[r]["tokens"] == tokens_per_round and lines[r]["contributors"] == 3 for lines in per_worker)
    assert status["round"] == 5 and [h["contributors"] for h in status["history"]] == [3] * 5
    assert f32_sha256(after_weights) == status["weights_sha256"] == observer.closed[4]["weights_sha256"]
    after = _val_loss(after_weights, data_dir, s["config"])
    assert after < before - 0.1, (before, after)


def test_two_workers_run_rounds_faster_than_the_relays_message_rate(data_dir):
    # Rounds of 2 local steps last milliseconds: many more rounds per second than the relay's rate
    # limit (here 2 messages/s, burst 4) allows messages, so charging each round's DELTA would stall
    # the session and a loss_ping with every DELTA would get the workers closed.
    rounds = 30
    with relay_process(env={"TABGPT_RELAY_RATE_PER_S": "2", "TABGPT_RELAY_RATE_BURST": "4"}) as (_, base):
        s = _create(base, data_dir, quorum=2, max_local_steps=2)
        sid = s["session_id"]
        workers = [_start_worker(base, sid, data_dir, f"w{i}", "--rounds", str(rounds)) for i in range(2)]
        try:
            results = [w.communicate(timeout=30) for w in workers]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
        status = httpx.get(f"{base}/api/sessions/{sid}").json()
    for w, (out, err) in zip(workers, results):
        assert w.returncode == 0 and "rate_limited" not in err and "retrying" not in err, err
        lines = _round_lines(out)
        assert sorted(lines) == list(range(rounds)) and {x["contributors"] for x in lines.values()} == {2}
    assert status["round"] == rounds and [h["contributors"] for h in status["history"]] == [2] * rounds


def test_a_worker_resumes_after_the_relay_restarts(data_dir, tmp_path):
    port = free_port()
    with relay_process(tmp_path, port) as (proc, base):
        s = _create(base, data_dir, quorum=1, max_local_steps=20, require_join_secret=True)
        stranger = _start_worker(base, s["session_id"], data_dir, "stranger")  # without the join secret
        _, err = stranger.communicate(timeout=30)
        assert stranger.returncode == 2 and len(err.strip().splitlines()) == 1 and "bad_secret" in err
        worker = _start_worker(base, s["session_id"], data_dir, "stayer", "--rounds", "4",
                               "--join-secret", s["join_secret"])  # resumes with its token, no secret needed
        seen = []
        for line in worker.stdout:  # the first committed round, then the relay goes down
            seen.append(line)
            if line.startswith("round 0 "):
                break
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    with relay_process(tmp_path, port) as (_, base):
        out, err = worker.communicate(timeout=40)
        status = httpx.get(f"{base}/api/sessions/{s['session_id']}").json()
    assert worker.returncode == 0, err
    client_id = re.search(r" as (\w+):", seen[0])[1]
    assert "retrying" in err and f"resumed as client {client_id}" in err
    lines = _round_lines("".join(seen) + out)
    assert max(lines) + 1 == status["round"] and lines[max(lines)]["sha"] == status["weights_sha256"]


def test_a_worker_whose_tokenizer_differs_exits_2_with_one_line(data_dir):
    with relay_process() as (_, base):
        s = _create(base, data_dir, tokenizer_sha256="ab" * 32)
        worker = _start_worker(base, s["session_id"], data_dir, "mismatch")
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 2
    assert len(err.strip().splitlines()) == 1 and "tokenizer" in err and "abababababab" in err


def test_an_unknown_session_exits_2_with_one_line(data_dir):
    with relay_process() as (_, base):
        worker = _start_worker(base, "x" * 22, data_dir, "lost")
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 2
    assert len(err.strip().splitlines()) == 1 and "unknown_session" in err


def test_ws_url_adds_the_socket_path():
    assert ws_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/ws"
    assert ws_url("https://relay.example/tabgpt/") == "wss://relay.example/tabgpt/ws"
    assert ws_url("ws://h:1/custom") == "ws://h:1/custom"
