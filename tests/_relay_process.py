"""A real relay (uvicorn, `server.run`) in a subprocess on a free loopback port, for end-to-end tests.

    with relay_process(state_dir, port, env=FAST) as (proc, base):   # base = "http://127.0.0.1:PORT"
        ...

On exit a still-running relay gets SIGTERM (a final checkpoint, clients closed with 1012).
The relay's log (uvicorn's access lines, slow-reader drops) goes to a file, `proc.log_path`: a
pipe nobody reads fills after 64 KiB and then blocks the relay's event loop mid-write.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
# Short rounds and a fast ticker so round-based tests finish in seconds.
ROUND_ENV = {"TABGPT_RELAY_MIN_ROUND_SECONDS": "0.1", "TABGPT_RELAY_TICK_INTERVAL_S": "0.02"}
# Every test client comes from 127.0.0.1: per-address quotas as large as the global limits
# (tests/test_server_quotas.py sets its own, and a caller's `env` overrides these).
LOOPBACK_QUOTAS = {"TABGPT_RELAY_MAX_SESSIONS_PER_ADDRESS": "1000", "TABGPT_RELAY_CREATES_PER_MINUTE": "100000",
                   "TABGPT_RELAY_MAX_SOCKETS_PER_ADDRESS": "10000"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _temporary_log() -> Path:
    fd, name = tempfile.mkstemp(prefix="relay-", suffix=".log")
    os.close(fd)
    return Path(name)


@contextmanager
def relay_process(state_dir: Path | None = None, port: int | None = None, env: dict | None = None,
                  log_path: Path | None = None, preexec_fn=None):
    """`log_path`: where the relay logs (kept); by default a temporary file, removed at exit.
    `preexec_fn`: run in the child before the relay starts (e.g. to ignore SIGXFSZ)."""
    port = port or free_port()
    full_env = {**os.environ, **LOOPBACK_QUOTAS, **(ROUND_ENV if env is None else env), "PYTHONPATH": str(REPO)}
    code = f"from server import run; run('127.0.0.1', {port}, {str(state_dir) if state_dir else None!r})"
    path = Path(log_path) if log_path is not None else _temporary_log()
    with open(path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], env=full_env, cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=log, preexec_fn=preexec_fn)
    proc.log_path = path
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/api/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            raise RuntimeError("relay did not start: " + relay_log(proc)[-2000:])
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        if log_path is None:
            proc.log_path.unlink(missing_ok=True)


def relay_log(proc) -> str:
    """What the relay of relay_process has logged so far."""
    return proc.log_path.read_text(errors="replace")
