"""mkdocs hook: the federated page's relay — its URL in the page, and a relay for `mkdocs serve`.

Where the page finds the relay (read at build time, first found wins):
    $TABGPT_RELAY_URL          e.g. https://relay.example.org (a deployment)
    mkdocs.yml extra.relay_url
    http://127.0.0.1:$TABGPT_RELAY_PORT (default port 8765): the relay `mkdocs serve` starts
A page opts in with front matter `relay_client: true` and gets <meta name="tabgpt-relay-url"> at
the start of <head> (this hook must come BEFORE pyscript_pages.py in mkdocs.yml, whose mini-coi
script must stay the first child of <head>).

`mkdocs serve` (never `mkdocs build`) starts the relay in a subprocess — `tabgpt relay` on
127.0.0.1:$TABGPT_RELAY_PORT, checkpoints in $TABGPT_RELAY_STATE_DIR or the user cache
(~/.cache/tabgpt/relay) — unless the URL points elsewhere or that port already answers (then a
relay is assumed to be there). It is stopped (SIGTERM: a final checkpoint) when serve exits.
The relay accepts the site's origin: http://localhost and http://127.0.0.1 on any port by default.
"""

from __future__ import annotations

import atexit
import html
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.pages import Page

log = logging.getLogger("mkdocs.plugins.tabgpt.relay")
DEFAULT_PORT = 8765
FRONT_MATTER_KEY = "relay_client"
_state: dict = {"url": None, "process": None}
# The relay, which also stops (SIGTERM to itself: a final checkpoint) when its stdin closes, i.e.
# when `mkdocs serve` exits however it exits (Ctrl-C, SIGTERM, a crash): no orphaned relay.
# A relay that cannot start (its port taken meanwhile, its state folder not writable) says why in one line.
RELAY_CHILD = """
import os, signal, sys, threading
from pyscript_app.errors import UserError
from server import run
def _watch_parent():
    sys.stdin.read()
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=_watch_parent, daemon=True).start()
try:
    run("127.0.0.1", int(sys.argv[1]), sys.argv[2])
except UserError as e:
    sys.exit(f"tabgpt: the federated page's relay did not start: {e}")
"""


def relay_port(environ=os.environ) -> int:
    return int(environ.get("TABGPT_RELAY_PORT") or DEFAULT_PORT)


def relay_url(extra: dict, environ=os.environ) -> str:
    """The URL the page will use (see the module doc for the order)."""
    url = environ.get("TABGPT_RELAY_URL") or (extra or {}).get("relay_url")
    return str(url or f"http://127.0.0.1:{relay_port(environ)}").rstrip("/")


def is_local_default(url: str, port: int) -> bool:
    parts = urlsplit(url)
    return parts.hostname in ("127.0.0.1", "localhost") and (parts.port or 80) == port


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def relay_tag(url: str) -> str:
    return f'<meta name="tabgpt-relay-url" content="{html.escape(url)}">\n'


def on_startup(command: str, dirty: bool = False) -> None:
    _state["serve"] = command == "serve"


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    _state["url"] = relay_url(config.extra)
    if _state.get("serve") and not _state.get("checked"):  # once: serve re-reads the config on each rebuild
        _state["checked"] = True
        start_relay(Path(config.config_file_path).resolve().parent, _state["url"])
    return config


def start_relay(repo_root: Path, url: str, environ=os.environ) -> subprocess.Popen | None:
    port = relay_port(environ)
    if not is_local_default(url, port):
        log.info("tabgpt: the federated page uses the relay at %s (not starting one)", url)
        return None
    if port_answers(port):
        log.info("tabgpt: port %d already answers: assuming a relay is there for the federated page", port)
        return None
    state_dir = environ.get("TABGPT_RELAY_STATE_DIR") or str(_cache_dir() / "relay")
    cmd = [sys.executable, "-c", RELAY_CHILD, str(port), state_dir]
    env = {**environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root), environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(cmd, cwd=repo_root, env=env, stdin=subprocess.PIPE)
    _state["process"] = process
    atexit.register(stop_relay)
    log.info("tabgpt: started the relay for the federated page at %s (pid %d, state in %s)", url, process.pid,
             state_dir)
    return process


def stop_relay() -> None:
    process = _state.get("process")
    if process is not None and process.poll() is None:
        process.terminate()  # SIGTERM: the relay checkpoints every session and closes clients with 1012
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
    _state["process"] = None


def on_shutdown() -> None:
    stop_relay()


def on_post_page(output: str, page: Page, config: MkDocsConfig) -> str:
    if not page.meta.get(FRONT_MATTER_KEY):
        return output
    start = output.find("<head>")
    if start < 0:
        return output
    start += len("<head>")
    return output[:start] + "\n" + relay_tag(_state["url"] or relay_url(config.extra)) + output[start:]


def _cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tabgpt"
