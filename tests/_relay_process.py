"""A real relay (uvicorn, `server.run`) in a subprocess on a free loopback port, for end-to-end tests.

    with relay_process(state_dir, port, env=FAST) as (proc, base):   # base = "http://127.0.0.1:PORT"
        ...

On exit a still-running relay gets SIGTERM (a final checkpoint, clients closed with 1012).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
# Short rounds and a fast ticker so round-based tests finish in seconds.
ROUND_ENV = {"TABGPT_RELAY_MIN_ROUND_SECONDS": "0.1", "TABGPT_RELAY_TICK_INTERVAL_S": "0.02"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def relay_process(state_dir: Path | None = None, port: int | None = None, env: dict | None = None):
    port = port or free_port()
    full_env = {**os.environ, **(ROUND_ENV if env is None else env), "PYTHONPATH": str(REPO)}
    code = f"from server import run; run('127.0.0.1', {port}, {str(state_dir) if state_dir else None!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], env=full_env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/api/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        else:
            raise RuntimeError("relay did not start: " + proc.stderr.read().decode()[-2000:])
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
