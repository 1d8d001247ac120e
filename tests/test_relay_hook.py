"""site_src/hooks/relay.py: the relay URL written into the federated page, and the relay that
`mkdocs serve` starts (skipped when the URL points elsewhere or the port already answers)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from types import ModuleType, SimpleNamespace

import httpx
import pytest

from _relay_process import free_port
from _hooks import load_hook
from _require import REPO_ROOT

PAGE = "<html>\n<head>\n<title>t</title>\n</head>\n<body></body>\n</html>"


@pytest.fixture()
def hook() -> ModuleType:
    return load_hook("relay.py")


def test_the_url_comes_from_the_environment_then_mkdocs_extra_then_the_local_port(hook):
    assert hook.relay_url({}, {}) == "http://127.0.0.1:8765"
    assert hook.relay_url({}, {"TABGPT_RELAY_PORT": "9000"}) == "http://127.0.0.1:9000"
    assert hook.relay_url({"relay_url": "https://r.example/"}, {}) == "https://r.example"
    assert hook.relay_url({"relay_url": "https://r.example"}, {"TABGPT_RELAY_URL": "http://x:1"}) == "http://x:1"


def test_only_pages_that_ask_get_the_relay_meta_tag_first_in_head(hook):
    hook._state["url"] = "http://127.0.0.1:9999"
    config = SimpleNamespace(extra={})
    asking = hook.on_post_page(PAGE, SimpleNamespace(meta={"relay_client": True}), config)
    assert asking.startswith('<html>\n<head>\n<meta name="tabgpt-relay-url" content="http://127.0.0.1:9999">')
    assert hook.on_post_page(PAGE, SimpleNamespace(meta={}), config) == PAGE


def test_serve_starts_no_relay_for_a_remote_url_or_a_port_that_answers(hook, tmp_path):
    assert hook.start_relay(REPO_ROOT, "https://r.example", {"TABGPT_RELAY_PORT": "8765"}) is None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert hook.start_relay(REPO_ROOT, f"http://127.0.0.1:{port}", {"TABGPT_RELAY_PORT": str(port)}) is None
    assert hook._state["process"] is None


def test_serve_starts_a_relay_on_the_port_and_stops_it(hook, tmp_path):
    port = free_port()
    env = {"TABGPT_RELAY_PORT": str(port), "TABGPT_RELAY_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    hook.on_startup(command="serve")
    process = hook.start_relay(REPO_ROOT, f"http://127.0.0.1:{port}", env)
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("the relay did not answer")
        assert hook._state["process"] is process
    finally:
        hook.on_shutdown()
    assert process.poll() is not None and hook._state["process"] is None



def test_a_relay_that_cannot_start_says_why_in_one_line(hook, tmp_path):
    (tmp_path / "file").write_text("x")
    state_dir = tmp_path / "file" / "state"  # under a file: no folder can be made there
    process = subprocess.Popen([sys.executable, "-c", hook.RELAY_CHILD, str(free_port()), str(state_dir)],
                               cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                               stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.wait(60) == 1
        assert process.stderr.read().strip() == (
            f"tabgpt: the federated page's relay did not start: cannot keep checkpoints in {state_dir}: Not a directory")
    finally:
        process.stdin.close()
        process.stderr.close()
