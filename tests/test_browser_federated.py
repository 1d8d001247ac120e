"""The federated page end to end: the relay (uvicorn on a free loopback port), Chromium pages with
WebGPU (SwiftShader on CI machines) and a native worker (`tabgpt join`, numpy) train one session.

One session (nano on names, quorum 3, 3 local steps of batch 4): page A creates it through the
form and joins, page B joins through the shared link, the native worker joins from the command
line. After each round all three hold the relay's weights (sha256, checked by each page with Web
Crypto and shown in its round log); the global loss falls; page C joins mid-session and starts
from the relay's current weights; the relay is killed (SIGTERM) and restarted on the same port and
state dir, and the clients resume without losing a committed round. One Chromium, one context per
page (each context registers mini-coi's service worker itself)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from _browser import build_site, open_page, playwright_instance, serve_directory, launch_chromium  # noqa: F401
from _require import REPO_ROOT, require
from _relay_process import free_port, relay_process
from test_federated_worker import ROUND_LINE
from pyscript_app.federated.form import join_secret_from

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]
STATUS = '[data-testid="status"]'


@pytest.fixture(scope="module")
def relay_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def site(tmp_path_factory, relay_port, data_mirror):
    """The site built with this test's relay URL in the federated page, on a static server."""
    env = {"TABGPT_RELAY_URL": f"http://127.0.0.1:{relay_port}", "TABGPT_DATA_MIRROR": str(data_mirror)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        folder = build_site(tmp_path_factory.mktemp("fedsite"))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    server = serve_directory(folder)
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture(scope="module")
def browser(playwright_instance):  # noqa: F811
    b = launch_chromium(playwright_instance)
    yield b
    b.close()


def wait_state(page, states, timeout_ms=120_000) -> str:
    """The page's status state once it is one of `states`; on a timeout, an AssertionError that says
    where the page is instead (its state, status line and last messages)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError  # installed: the fixtures need it

    try:
        page.wait_for_selector(", ".join(f'{STATUS}[data-state="{s}"]' for s in states), timeout=timeout_ms)
    except PlaywrightTimeoutError:
        messages = (page.text_content('[data-testid="messages"]') or "")[-1500:]
        raise AssertionError(f"state {page.get_attribute(STATUS, 'data-state')!r} after {timeout_ms} ms, not one of "
                             f"{states}: {page.text_content(STATUS)!r}; messages: {messages}") from None
    return page.get_attribute(STATUS, "data-state")


def open_federated(browser, url: str):
    rec = open_page(browser, url, timeout_ms=120_000)
    state = wait_state(rec.page, ("ready", "no-webgpu", "no-relay", "error"))
    require(state != "no-webgpu", f"no WebGPU adapter in this Chromium: {rec.page.text_content(STATUS)}")
    assert state == "ready", rec.page.text_content(STATUS)
    return rec


def join(page, name: str) -> None:
    page.fill('[data-testid="name-input"]', name)
    page.click('[data-testid="join-session"]')


def round_log(page) -> dict:
    text = page.text_content('[data-testid="round-log"]')
    return json.loads(text) if text else {"joined": None, "rounds": []}


def wait_rounds(pages, n: int, timeout_s: float = 150) -> None:
    """Until every page has applied the update of round n - 1."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(any(r["round"] >= n - 1 for r in round_log(p)["rounds"]) for p in pages):
            return
        for p in pages:
            assert p.get_attribute(STATUS, "data-state") not in ("error", "left"), p.text_content(STATUS)
        time.sleep(0.5)
    raise AssertionError(f"rounds did not reach {n}: {[round_log(p) for p in pages]}")


class RelayProcess:
    """_relay_process.relay_process, started and stopped by hand (it is stopped and started again)."""

    def __init__(self, state_dir, port: int) -> None:
        self.state_dir, self.port, self._cm = state_dir, port, None
        self.logs: list[Path] = []  # one per start, kept for a failure's message

    def start(self) -> str:
        self.logs.append(self.state_dir.parent / f"relay-{len(self.logs)}.log")
        self._cm = relay_process(self.state_dir, self.port, log_path=self.logs[-1])
        self.proc, self.base = self._cm.__enter__()
        return self.base

    def stop(self) -> None:
        """SIGTERM (the relay checkpoints every session, closes clients with 1012) and wait."""
        cm, self._cm = self._cm, None
        if cm is not None:
            cm.__exit__(None, None, None)

    def warnings(self) -> list[str]:
        """The relay's warning and error lines (slow readers dropped, failed sends) over every start."""
        return [line for path in self.logs if path.exists() for line in path.read_text(errors="replace").splitlines()
                if line.startswith(("WARNING", "ERROR")) or "slow reader" in line]


def wait_until(condition, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.2)


def held_versions(log: dict) -> dict[int, str]:
    """A page's weights by version v (W_v, the weights round v trains from): W_{r+1} after the update
    of round r, W_R for a whole load (joining, resuming). A version both ways must agree."""
    held = {r["round"] + 1: r["sha256"] for r in log["rounds"]}
    for x in log.get("loaded", []):
        assert held.setdefault(x["round"], x["sha256"]) == x["sha256"], f"W_{x['round']} differs: {log}"
    return held


def worker_rounds(lines: list[str]) -> dict[int, str]:
    return {int(m[1]): m[7] for m in map(ROUND_LINE.match, lines) if m}


def test_two_pages_and_a_native_worker_train_one_session_through_a_relay_restart(browser, site, relay_port,
                                                                                   tmp_path):
    t0 = time.perf_counter()
    relay = RelayProcess(tmp_path / "relay-state", relay_port)
    base = relay.start()
    recs, worker, out = [], None, ""
    try:
        a = open_federated(browser, site.url("federated/"))
        recs.append(a)
        pa = a.page
        assert pa.evaluate("crossOriginIsolated") is True
        for name, value in (("quorum", 3), ("round_seconds", 120), ("grace_seconds", 10), ("max_local_steps", 3),
                            ("batch", 4)):
            pa.fill(f'[name="{name}"]', str(value))
        pa.select_option('[name="aggregator"]', "diloco")
        pa.click('[data-testid="create-session"]')
        assert wait_state(pa, ("created", "error")) == "created", pa.text_content(STATUS)
        sid = pa.input_value('[data-testid="session-input"]')
        share = pa.evaluate("location.href")
        assert f"?session={sid}#key=" in share  # the link carries the session's join secret
        secret = join_secret_from(share)
        join(pa, "tab-a")

        b = open_federated(browser, share)  # the shared link fills in the session
        recs.append(b)
        pb = b.page
        assert pb.input_value('[data-testid="session-input"]') == sid
        join(pb, "tab-b")
        cmd = [sys.executable, "-m", "pyscript_app.cli", "join", base, "--session", sid, "--join-secret", secret,
               "--name", "native", "--backend", "numpy"]
        worker = subprocess.Popen(cmd, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_rounds([pa, pb], 2)
        t_two = time.perf_counter() - t0
        assert pa.text_content('[data-testid="session-id"]') == sid
        # the devices panel follows the relay's status, polled every POLL_S (1.5 s): a poll answered before the
        # native worker joined may land after its clients_changed, until the next poll
        deadline = time.monotonic() + 5
        while sorted(names := pa.eval_on_selector_all('[data-testid="device"]',
                                                      "rows => rows.map(r => r.dataset.name)")) != ["native", "tab-a", "tab-b"]:
            assert time.monotonic() < deadline, names
            time.sleep(0.2)

        # page C joins mid-session: it loads the relay's current weights
        c = open_federated(browser, share)
        recs.append(c)
        pc = c.page
        pc.fill('[data-testid="session-input"]', "no-such-session-0000")  # a wrong id: one readable line
        join(pc, "tab-c")
        assert wait_state(pc, ("error",), 30_000) == "error" and "no such session" in pc.text_content(STATUS)
        pc.fill('[data-testid="session-input"]', share)  # the link works as well as the id
        join(pc, "tab-c")
        pc.wait_for_function("(() => { const e = document.querySelector('[data-testid=round-log]');"
                             " return e && JSON.parse(e.textContent).joined; })()", timeout=120_000)
        joined = round_log(pc)["joined"]
        before = {r["round"]: r["sha256"] for r in round_log(pa)["rounds"]}
        assert joined["round"] >= 2 and joined["sha256"] == before[joined["round"] - 1]

        # the relay goes down right after a committed round and comes back on the same port and state
        wait_rounds([pa, pb], joined["round"] + 1)
        relay.stop()
        down_at = max(r["round"] for r in round_log(pa)["rounds"])
        time.sleep(1)  # every client notices and starts retrying
        base = relay.start()
        wait_rounds([pa, pb, pc], down_at + 3, timeout_s=180)
        status = httpx.get(f"{base}/api/sessions/{sid}").json()
        for p in (pa, pb, pc):
            page_messages = p.text_content('[data-testid="messages"]')
            assert "Lost the connection to the relay" in page_messages and "Reconnected" in page_messages

        # the owner ends the session once page A holds the weights the status above reported (a round
        # that closed just before may still be on its way): every page says so, the native worker leaves
        wait_until(lambda: max(held_versions(round_log(pa))) >= status["round"], "page A holds the status' weights")
        pa.click('[data-testid="end-session"]')
        for p in (pa, pb, pc):
            assert wait_state(p, ("left",), 60_000) == "left"
            assert "The session has ended" in p.text_content('[data-testid="messages"]')
        out, _ = worker.communicate(timeout=30)
        assert worker.returncode == 0, out
    finally:
        if worker is not None and worker.returncode is None:
            worker.terminate()
            out, _ = worker.communicate(timeout=20)
        relay.stop()
    wall = time.perf_counter() - t0

    held = {name: held_versions(round_log(rec.page)) for name, rec in zip(("a", "b", "c"), recs)}
    native = worker_rounds(out.splitlines())
    held["native"] = {r + 1: sha for r, sha in native.items()}
    history = status["history"]
    what = (f"status round {status['round']}, down_at {down_at}, held a {sorted(held['a'])} b {sorted(held['b'])} "
            f"c {sorted(held['c'])} native {sorted(held['native'])}; loads a {round_log(pa)['loaded']}; "
            f"history {[h['round'] for h in history]}; relay warnings {relay.warnings()}")
    # no committed round lost: the relay's rounds are contiguous through the restart ...
    assert [h["round"] for h in history] == list(range(len(history))) and len(history) >= down_at + 3, what
    # ... every client that held a version of the weights held the same bits ...
    for v in sorted(set().union(*held.values())):
        shas = {h[v] for h in held.values() if v in h}
        assert len(shas) == 1, f"W_{v}: {shas}; {what}"
    # ... page A held every version from its join on, skipping only what a resume loaded past, and
    # the one the status reported before the end
    a_versions, a_loads = sorted(held["a"]), {x["round"] for x in round_log(pa)["loaded"]}
    gaps = [(p, q) for p, q in zip(a_versions, a_versions[1:]) if q > p + 1 and q not in a_loads]
    assert not gaps, f"page A skipped versions without a resume: {gaps}; {what}"
    if status["round"] in held["a"]:
        assert held["a"][status["round"]] == status["weights_sha256"], what
    else:  # only a resume may jump past it
        assert any(v > status["round"] for v in a_loads), f"page A never held W_{status['round']}; {what}"
    assert all(r in native for r in range(3)), out
    assert history[-1]["loss"] < history[0]["loss"] - 0.2, [h["loss"] for h in history]
    for rec in recs:
        foreign = [u for u in rec.foreign_requests(site.origin) if not u.startswith(base)]
        assert not foreign, foreign
        assert not rec.page_errors, rec.page_errors
    print(f"\n[federated] {len(history)} rounds, 2 rounds after {t_two:.0f} s, {wall:.0f} s in all; "
          f"losses {[round(h['loss'], 3) for h in history]}")
    for rec in recs:
        rec.close()
