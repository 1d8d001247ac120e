"""Per-address quotas of a deployment on Redis (issue 20, part 1): two real relay processes on one
real redis-server count one quota between them, and reserve it atomically.

Each test's clients bind their own loopback source address, so one test's quota use never spills
into another's. Locally a missing `redis-server` skips these tests; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import asyncio
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from _relay_process import free_port
from _relay_process import relay_process as _relay_process
from server.cluster_keys import Keys
from server.cluster_quotas import ClusterQuotas, ReservationLapsed
from server.settings import RelaySettings
from test_server_cluster import redis_server
from test_server_uvicorn import FAST_ENV, _ws_url

pytestmark = pytest.mark.timeout(60)

LEASE_S = 1.0
BODY = {"model": "nano", "dataset": "names"}


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    port = free_port()
    with redis_server(tmp_path_factory.mktemp("redis"), port):
        yield f"redis://127.0.0.1:{port}/0"


@contextmanager
def relay_on(redis_url: str):
    env = {**FAST_ENV, "TABGPT_RELAY_REDIS_URL": redis_url, "TABGPT_RELAY_LEASE_S": str(LEASE_S),
           "TABGPT_RELAY_PING_INTERVAL_S": "5", "TABGPT_RELAY_PING_TIMEOUT_S": "5",
           "TABGPT_RELAY_MAX_SESSIONS_PER_ADDRESS": "3", "TABGPT_RELAY_CREATES_PER_MINUTE": "5",
           "TABGPT_RELAY_MAX_SOCKETS_PER_ADDRESS": "3"}
    with _relay_process(None, env=env) as (proc, base):
        yield proc, base


@pytest.fixture(scope="module")
def pair(redis_url):
    """Two relay processes of one deployment: their base URLs."""
    with ExitStack() as stack:
        yield [stack.enter_context(relay_on(redis_url))[1] for _ in range(2)]


def _create(base: str, address: str) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10) as c:
        return c.post(base + "/api/sessions", json=BODY)


def _delete(base: str, s: dict) -> None:
    r = httpx.delete(f"{base}/api/sessions/{s['session_id']}", headers={"Authorization": "Bearer " + s["owner_token"]})
    assert r.status_code == 200


def _refused(r: httpx.Response, reason: str) -> None:
    assert r.status_code == 429 and r.json()["reason"] == reason, r.text
    assert int(r.headers["Retry-After"]) >= 1 and r.json()["detail"]


def _socket(base: str, address: str):
    return connect(_ws_url(base), open_timeout=5, close_timeout=0.5, source_address=(address, 0))


def test_two_processes_refuse_the_create_over_the_quota_together(pair):
    a, b = pair
    created = [_create(base, "127.0.1.2") for base in (a, b, a)]
    assert [r.status_code for r in created] == [201, 201, 201]
    _refused(_create(b, "127.0.1.2"), "sessions_per_address")
    _delete(a, created[1].json())  # created through b, deleted through a: its place is free everywhere
    assert _create(b, "127.0.1.2").status_code == 201
    for i in range(5):  # creates per minute count for the deployment, even when deleted at once
        r = _create(pair[i % 2], "127.0.1.3")
        assert r.status_code == 201
        _delete(pair[(i + 1) % 2], r.json())
    r = _create(b, "127.0.1.3")
    _refused(r, "creates_per_minute")
    assert 50 <= int(r.headers["Retry-After"]) <= 60


def test_simultaneous_creates_on_both_processes_never_pass_the_cap(pair, redis_url):
    async def burst():
        transport = httpx.AsyncHTTPTransport(local_address="127.0.1.4")
        async with httpx.AsyncClient(transport=transport, timeout=20) as c:
            return await asyncio.gather(*(c.post(pair[i % 2] + "/api/sessions", json=BODY) for i in range(12)))

    answers = asyncio.run(burst())
    assert sorted(r.status_code for r in answers) == [201] * 3 + [429] * 9
    for r in answers:
        if r.status_code == 429:
            _refused(r, "sessions_per_address")
    import redis

    with redis.Redis.from_url(redis_url) as r:
        assert r.scard("tabgpt:creator:127.0.1.4") == 3 and r.hlen("tabgpt:pending") == 0


def test_sockets_over_the_cap_across_two_processes_are_refused(pair):
    a, b = pair
    with ExitStack() as stack:
        first = stack.enter_context(_socket(a, "127.0.1.5"))
        stack.enter_context(_socket(a, "127.0.1.5"))
        stack.enter_context(_socket(b, "127.0.1.5"))
        for base in (a, b):
            with pytest.raises(InvalidStatus) as e:
                stack.enter_context(_socket(base, "127.0.1.5"))
            assert e.value.response.status_code == 429 and int(e.value.response.headers["Retry-After"]) >= 1
        first.close()  # a socket closed on one process frees a place on the other
        deadline = time.monotonic() + 5
        while True:
            try:
                stack.enter_context(_socket(b, "127.0.1.5"))
                break
            except InvalidStatus:
                assert time.monotonic() < deadline
                time.sleep(0.05)

    def attempt(i: int):
        try:
            return _socket(pair[i % 2], "127.0.1.6")
        except InvalidStatus as e:
            return e.response.status_code

    with ThreadPoolExecutor(8) as pool:  # simultaneous handshakes: the cap is reserved, not just checked
        results = list(pool.map(attempt, range(8)))
    opened = [s for s in results if not isinstance(s, int)]
    assert len(opened) == 3 and sorted(s for s in results if isinstance(s, int)) == [429] * 5
    for s in opened:
        with s:  # closed
            pass


def test_a_killed_process_s_sockets_stop_counting(pair, redis_url):
    with relay_on(redis_url) as (doomed, base), ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(_socket(base, "127.0.1.7"))
        with pytest.raises(InvalidStatus):
            _socket(pair[0], "127.0.1.7")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        killed_at = time.monotonic()
        while True:  # its heartbeat lapses, and its sockets with it
            try:
                with _socket(pair[0], "127.0.1.7"):
                    break
            except InvalidStatus:
                assert time.monotonic() - killed_at < LEASE_S + 3, "a dead process's sockets still count"
                time.sleep(0.1)


def test_a_dead_process_s_create_reservations_expire(redis_url):
    """A process killed between admitting a create and storing it: its reservation goes with its heartbeat."""
    import redis.asyncio as redis

    async def scenario():
        r = redis.from_url(redis_url)
        k = Keys("quota-test:")
        settings = RelaySettings(max_sessions_per_address=2, creates_per_minute=100, lease_s=0.5)
        ghost, live = ClusterQuotas(r, k, "ghost", settings), ClusterQuotas(r, k, "live", settings)
        await r.set(k.proc("ghost"), "1", px=500)
        await r.set(k.proc("live"), "1", px=5000)
        assert await ghost.admit("t1", "198.51.100.1", 9) is None
        assert await ghost.admit("t2", "198.51.100.1", 9) is None
        refused = await live.admit("t3", "198.51.100.1", 9)
        assert refused is not None and refused.reason == "sessions_per_address" and refused.retry_after == 9
        await asyncio.sleep(0.6)  # the ghost's heartbeat lapses
        assert await live.admit("t3", "198.51.100.1", 9) is None
        with pytest.raises(ReservationLapsed):  # a create that outlived its reservation is not stored
            await ghost.commit("t1", "s1", "198.51.100.1", [k.s("s1", "head")])
        assert await r.scard(k.creator("198.51.100.1")) == 0
        await r.aclose()

    asyncio.run(scenario())
