"""Per-address quotas and idle expiry against a real relay process (issue 20, part 1).

Loopback has many addresses (127.0.0.0/8): each test's clients bind their own source address, so
one relay serves the module and a test's quota use never spills into another's.
"""

from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from _relay_process import free_port
from _relay_process import relay_process as _relay_process
from server.quotas import address_key
from test_server_uvicorn import FAST_ENV, Worker, _ws_url

pytestmark = pytest.mark.timeout(60)

EXPIRY_S = 1.5
ENV = {**FAST_ENV, "TABGPT_RELAY_MAX_SESSIONS_PER_ADDRESS": "3", "TABGPT_RELAY_CREATES_PER_MINUTE": "5",
       "TABGPT_RELAY_MAX_SOCKETS_PER_ADDRESS": "3", "TABGPT_RELAY_IDLE_EXPIRY_S": str(EXPIRY_S),
       "TABGPT_RELAY_PING_INTERVAL_S": "5", "TABGPT_RELAY_PING_TIMEOUT_S": "5"}
BODY = {"model": "nano", "dataset": "names"}


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    state = tmp_path_factory.mktemp("quota-state")
    with _relay_process(state, env=ENV) as (_, base):
        yield base, state


@contextmanager
def client_from(address: str):
    """An HTTP client whose connections come from `address` (a loopback address other than 127.0.0.1)."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10) as c:
        yield c


def _create(c: httpx.Client, base: str, **headers) -> httpx.Response:
    return c.post(base + "/api/sessions", json=BODY, headers=headers)


def _delete(c: httpx.Client, base: str, s: dict) -> None:
    r = c.delete(f"{base}/api/sessions/{s['session_id']}", headers={"Authorization": "Bearer " + s["owner_token"]})
    assert r.status_code == 200


def _refused(r: httpx.Response, reason: str) -> None:
    assert r.status_code == 429 and r.json()["reason"] == reason, r.text
    assert int(r.headers["Retry-After"]) >= 1 and r.json()["detail"]


def _wait_gone(base: str, sid: str, within: float) -> float:
    start = time.monotonic()
    while httpx.get(f"{base}/api/sessions/{sid}").status_code != 404:
        assert time.monotonic() - start < within, f"session {sid} did not expire"
        time.sleep(0.1)
    return time.monotonic() - start


def test_address_keys():
    assert address_key("203.0.113.5") == address_key("203.0.113.5:4431") == "203.0.113.5"
    assert address_key("2001:db8::1") == address_key("[2001:db8::ffff]:443") == "2001:db8::/64"
    assert address_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert address_key("not an address" * 10) == ("not an address" * 10)[:64]


def test_a_flood_of_creates_from_one_address_leaves_room_for_everyone_else(relay):
    base, _ = relay
    with client_from("127.0.0.2") as flooder:
        answers = [_create(flooder, base) for _ in range(200)]
        created = [r.json() for r in answers if r.status_code == 201]
        assert len(created) == 3  # its live sessions
        for r in answers[3:]:
            _refused(r, "sessions_per_address")
        # a forwarding header from the client is ignored: no trusted proxy is configured
        _refused(_create(flooder, base, **{"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"}),
                 "sessions_per_address")
        with client_from("127.0.0.3") as other:
            assert _create(other, base).status_code == 201  # another user still creates
        _delete(flooder, base, created[0])  # a deleted session frees its place
        assert _create(flooder, base).status_code == 201
    with client_from("127.0.0.4") as busy:  # creates per minute count even when deleted at once
        for _ in range(5):
            s = _create(busy, base)
            assert s.status_code == 201
            _delete(busy, base, s.json())
        r = _create(busy, base)
        _refused(r, "creates_per_minute")
        assert 50 <= int(r.headers["Retry-After"]) <= 60


def test_open_sockets_per_address(relay):
    base, _ = relay
    url = _ws_url(base)
    def socket_from(address: str):
        return connect(url, open_timeout=5, source_address=(address, 0))

    with ExitStack() as stack:
        first = stack.enter_context(socket_from("127.0.0.5"))
        for _ in range(2):
            stack.enter_context(socket_from("127.0.0.5"))
        with pytest.raises(InvalidStatus) as e:
            stack.enter_context(socket_from("127.0.0.5"))
        assert e.value.response.status_code == 429 and int(e.value.response.headers["Retry-After"]) >= 1
        with socket_from("127.0.0.6"):
            pass  # another address connects
        first.close()
        deadline = time.monotonic() + 5
        while True:  # the relay frees the place once it has seen the close
            try:
                stack.enter_context(socket_from("127.0.0.5"))
                break
            except InvalidStatus:
                assert time.monotonic() < deadline
                time.sleep(0.05)


def test_an_abandoned_session_expires_and_a_used_one_does_not(relay):
    base, state = relay
    with client_from("127.0.0.7") as c:
        abandoned, used = _create(c, base).json(), _create(c, base).json()
    left = Worker(base, abandoned["session_id"], "leaves")
    left.pump("weights")
    left.close()  # no client from now on
    stays = Worker(base, used["session_id"], "stays")
    stays.pump("weights")
    waited = _wait_gone(base, abandoned["session_id"], within=EXPIRY_S + 3)
    assert waited >= EXPIRY_S - 0.5
    assert not (state / "sessions" / (abandoned["session_id"] + ".tgck")).exists()  # its checkpoint too
    time.sleep(0.5)  # the used session is now older than the expiry, but has a client
    assert httpx.get(f"{base}/api/sessions/{used['session_id']}").status_code == 200
    stays.close()
    _wait_gone(base, used["session_id"], within=EXPIRY_S + 3)  # until its client left


def test_expiry_holds_across_a_restart(tmp_path):
    port = free_port()
    with _relay_process(tmp_path, port, env=ENV) as (_, base):
        abandoned, used = (httpx.post(base + "/api/sessions", json=BODY).json() for _ in range(2))
        w = Worker(base, used["session_id"], "w")
        w.pump("weights")
    w.close()  # connected at the shutdown: its session's idle time starts with the restart
    time.sleep(EXPIRY_S + 0.2)  # the abandoned session expires while the relay is down
    with _relay_process(tmp_path, port, env=ENV) as (_, base):
        assert httpx.get(f"{base}/api/sessions/{abandoned['session_id']}").status_code == 404
        assert not (tmp_path / "sessions" / (abandoned["session_id"] + ".tgck")).exists()
        assert httpx.get(f"{base}/api/sessions/{used['session_id']}").status_code == 200
        _wait_gone(base, used["session_id"], within=EXPIRY_S + 3)
        assert not (tmp_path / "sessions" / (used["session_id"] + ".tgck")).exists()


def test_the_address_comes_from_a_trusted_proxy_header_only_when_configured(tmp_path):
    env = {**ENV, "TABGPT_RELAY_MAX_SESSIONS_PER_ADDRESS": "1",
           "TABGPT_RELAY_TRUSTED_PROXY_HEADER": "X-Forwarded-For"}
    with _relay_process(None, env=env) as (_, base), httpx.Client(timeout=10) as c:
        assert _create(c, base, **{"X-Forwarded-For": "203.0.113.5"}).status_code == 201
        _refused(_create(c, base, **{"X-Forwarded-For": "203.0.113.5"}), "sessions_per_address")
        # the last entry is the one the proxy added; what the client put before it counts for nothing
        assert _create(c, base, **{"X-Forwarded-For": "203.0.113.5, 198.51.100.7"}).status_code == 201
        _refused(_create(c, base, **{"X-Forwarded-For": "203.0.113.77, 198.51.100.7"}), "sessions_per_address")
        assert _create(c, base, **{"X-Forwarded-For": "2001:db8::1"}).status_code == 201
        _refused(_create(c, base, **{"X-Forwarded-For": "2001:db8::2"}), "sessions_per_address")  # same /64
        assert _create(c, base).status_code == 201  # no header: the peer's address
