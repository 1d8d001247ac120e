"""Several relay processes on one Redis (`tabgpt relay --redis`, issue 20 part 2), all real: a
redis-server on a free port and relay processes (uvicorn) on loopback, one set per module.

Locally a missing `redis-server` skips these tests; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from contextlib import ExitStack, contextmanager

import httpx
import numpy as np
import pytest

from _relay_process import free_port
from _relay_process import relay_process as _relay_process
from _require import require
from pyscript_app.federated.frames import DTYPE_F16, KIND_DELTA, encode_frame
from server import aggregate, partials
from server.cluster import ClusterRelay
from server.connection import CLOSE_POLICY, Connection, TokenBucket
from server.protocol import Join, SessionConfig
from server.settings import RelaySettings
from test_server_uvicorn import FAST_ENV, Worker

pytestmark = pytest.mark.timeout(60)

LEASE_S = 1.0
LEADER_LEASE_S = 3.0  # the killed-leader test's leader
EXPIRY_S = 2.0


@contextmanager
def redis_server(folder, port: int, *persistence: str):
    """A redis-server on loopback `port`, its files in `folder`; no persistence unless asked."""
    server = shutil.which("redis-server")
    require(server is not None, "redis-server not found (apt-get install redis-server)")
    import redis

    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                             *(persistence or ("--save", "", "--appendonly", "no"))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield proc
    finally:
        client.close()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    port = free_port()
    with redis_server(tmp_path_factory.mktemp("redis"), port):
        yield f"redis://127.0.0.1:{port}/0"


def _env(redis_url: str, lease_s: float = LEASE_S) -> dict:
    return {**FAST_ENV, "TABGPT_RELAY_REDIS_URL": redis_url, "TABGPT_RELAY_LEASE_S": str(lease_s),
            "TABGPT_RELAY_PING_INTERVAL_S": "5", "TABGPT_RELAY_PING_TIMEOUT_S": "5",
            "TABGPT_RELAY_IDLE_EXPIRY_S": str(EXPIRY_S)}


@contextmanager
def relay_on(redis_url: str, lease_s: float = LEASE_S):
    with _relay_process(None, env=_env(redis_url, lease_s)) as (proc, base):
        yield proc, base


@pytest.fixture(scope="module")
def cluster(redis_url):
    """Three relay processes of one deployment: their base URLs."""
    with ExitStack() as stack:
        yield [stack.enter_context(relay_on(redis_url))[1] for _ in range(3)]


def _create(base: str, **body) -> dict:
    r = httpx.post(base + "/api/sessions", json={"model": "nano", "dataset": "names", **body})
    assert r.status_code == 201, r.text
    return r.json()


def _weights(base: str, sid: str) -> np.ndarray:
    return np.frombuffer(httpx.get(f"{base}/api/sessions/{sid}/weights").content[28:], "<f4").copy()


def _deltas(count: int, n: int) -> list[bytes]:
    rng = np.random.default_rng(3)
    return [(rng.standard_normal(count) * 10.0 ** rng.uniform(-4, -2)).astype("<f2").tobytes() for _ in range(n)]


TOKENS, LOSSES = [96, 640, 320], [3.5, 2.75, 3.0]


def test_the_update_is_bit_identical_however_clients_are_spread(cluster):
    # client k -> process; the session is created on process 0, whose replica leads it: in "0/2/1" the
    # leader holds no delta and the close is sharded over the two other processes
    spreads = {"3": [0, 0, 0], "2/1": [0, 0, 1], "1/1/1": [0, 1, 2], "0/2/1": [1, 1, 2]}
    shas, weights0 = {}, None
    for name, where in spreads.items():
        # DiLoCo: round 1 also goes through the outer momentum the leader keeps in Redis
        s = _create(cluster[0], quorum=3, round_seconds=30, grace_seconds=5, init_seed=7, aggregator="diloco")
        sid = s["session_id"]
        if weights0 is None:
            weights0 = _weights(cluster[0], sid)
            deltas = _deltas(s["param_count"], 6)
        workers = [Worker(cluster[p], sid, f"w{k}") for k, p in enumerate(where)]
        for w in workers:
            w.pump("weights")
        for r in range(2):
            for w, d, n, loss in zip(workers, deltas[3 * r : 3 * r + 3], TOKENS, LOSSES):
                w.ws.send(w.client.delta_frame(d, tokens=n, loss=loss))
            closed = [w.pump("update") for w in workers]
            assert len({c["weights_sha256"] for c in closed}) == 1 and closed[0]["contributors"] == 3
            shas[name, r] = closed[0]["weights_sha256"]
        for base in cluster:  # every process serves the committed weights
            assert aggregate.weights_sha256(_weights(base, sid)) == shas[name, 1]
        for w in workers:
            w.close()
    r = httpx.delete(f"{cluster[2]}/api/sessions/{sid}", headers={"Authorization": "Bearer " + s["owner_token"]})
    assert r.status_code == 200  # its owner deletes it through any process
    start = time.monotonic()
    while not _gone(cluster, sid):
        assert time.monotonic() - start < 3
        time.sleep(0.05)
    assert len({shas[n, 0] for n in spreads}) == 1 and len({shas[n, 1] for n in spreads}) == 1, shas
    # and it is the documented aggregate (server/partials.py) of these deltas
    config = SessionConfig.from_dict(s["config"])
    held = []
    for k, (d, n, loss) in enumerate(zip(deltas, TOKENS, LOSSES)):
        norm = aggregate.validate_delta(encode_frame(KIND_DELTA, DTYPE_F16, d, round=0, tokens=n, loss=loss),
                                        config).norm  # as the relay computes it
        held.append(aggregate.Held(f"c{k}", memoryview(d), DTYPE_F16, norm, n, loss))
    plan = partials.plan_round(0, [partials.Contribution(h.client_id, h.tokens, h.norm, h.loss) for h in held], True)
    expected = partials.combine([partials.partial_sum(held, plan, config.param_count)], plan, weights0, config, None,
                                DTYPE_F16)
    assert expected.weights_sha256 == shas["3", 0]


def test_a_killed_process_s_clients_resume_elsewhere_and_the_round_completes(cluster, redis_url):
    with relay_on(redis_url) as (doomed, base4):
        s = _create(cluster[0], quorum=3, round_seconds=30, grace_seconds=5)
        sid = s["session_id"]
        d = _deltas(s["param_count"], 3)
        w1, w3 = Worker(cluster[0], sid, "w1"), Worker(cluster[1], sid, "w3")
        w2 = Worker(base4, sid, "w2")
        for w in (w1, w2, w3):
            w.pump("weights")
        w2.ws.send(w2.client.delta_frame(d[1], tokens=64, loss=3.0))
        assert w2.pump("submit_ack")["submissions"] == 1
        w1.ws.send(w1.client.delta_frame(d[0], tokens=64, loss=3.0))
        assert w1.pump("submit_ack")["submissions"] == 2
        doomed.send_signal(signal.SIGKILL)  # mid-round: w2's delta is gone with it
        doomed.wait(10)
    w2.close()
    again = Worker(cluster[2], sid, "w2", token=w2.client.client_token)  # resumes on another process
    ack = again.pump("join_ack")
    assert ack["client_id"] == w2.client.client_id and ack["round"] == 0
    again.pump("weights")
    again.ws.send(again.client.delta_frame(d[1], tokens=64, loss=3.0))
    assert again.pump("submit_ack")["submissions"] == 2  # its lost delta no longer counts
    w3.ws.send(w3.client.delta_frame(d[2], tokens=64, loss=3.0))
    closed = [w.pump("update") for w in (w1, again, w3)]
    assert {c["contributors"] for c in closed} == {3} and len({c["weights_sha256"] for c in closed}) == 1
    for w in (w1, again, w3):
        w.close()


def test_a_killed_leader_is_replaced_within_its_lease_and_no_round_is_lost(cluster, redis_url):
    # the leader to kill holds a longer lease than the others: on a busy machine a 1 s lease can lapse
    # and pass to another process before the test kills it
    with relay_on(redis_url, lease_s=LEADER_LEASE_S) as (leader, base_l):
        me = httpx.get(base_l + "/api/health").json()["process"]
        s = _create(base_l, quorum=2, round_seconds=30, grace_seconds=5)
        sid = s["session_id"]
        d = _deltas(s["param_count"], 4)
        w1 = Worker(base_l, sid, "w1")
        w1.pump("weights")
        # a process with a replica of the session takes its lease: while only the creating process has one,
        # it is that process (until then the status reads "")
        deadline = time.monotonic() + 3 * LEADER_LEASE_S
        while (leads := httpx.get(f"{cluster[1]}/api/sessions/{sid}").json()["leader"]) != me:
            assert leads == "" and time.monotonic() < deadline, leads
            time.sleep(0.05)
        w2 = Worker(cluster[1], sid, "w2")
        w2.pump("weights")
        for w, delta in zip((w1, w2), d):
            w.ws.send(w.client.delta_frame(delta, tokens=64, loss=3.0))
        committed = {w.pump("update")["weights_sha256"] for w in (w1, w2)}
        assert len(committed) == 1
        w2.ws.send(w2.client.delta_frame(d[2], tokens=64, loss=2.5))
        assert w2.pump("submit_ack")["submissions"] == 1
        leader.send_signal(signal.SIGKILL)
        leader.wait(10)
        killed_at = time.monotonic()
    w1.close()
    again = Worker(cluster[0], sid, "w1", token=w1.client.client_token)
    ack = again.pump("join_ack")
    assert ack["round"] == 1 and ack["weights_sha256"] in committed  # the committed round survived
    again.pump("weights")
    again.ws.send(again.client.delta_frame(d[3], tokens=64, loss=2.5))
    closed = [w.pump("update") for w in (again, w2)]
    assert time.monotonic() - killed_at < LEADER_LEASE_S + 4
    assert closed[0]["round"] == 1 and len({c["weights_sha256"] for c in closed}) == 1
    status = httpx.get(f"{cluster[2]}/api/sessions/{sid}").json()
    assert status["round"] == 2 and [h["round"] for h in status["history"]] == [0, 1]
    # the lease is renewed while the session lives; between a lapse and the next renewal it reads ""
    deadline = time.monotonic() + 3 * LEASE_S + 2
    while status["leader"] in ("", me) and time.monotonic() < deadline:
        time.sleep(0.1)
        status = httpx.get(f"{cluster[2]}/api/sessions/{sid}").json()
    assert status["leader"] not in ("", me)
    for w in (again, w2):
        w.close()


def _gone(bases: list[str], sid: str) -> bool:
    return all(httpx.get(f"{b}/api/sessions/{sid}").status_code == 404 for b in bases)


def test_an_abandoned_session_expires_whoever_serves_it(cluster, redis_url):
    served = _create(cluster[0], listed=True)["session_id"]  # its replica (and leader) is on cluster[0]
    listed = httpx.get(cluster[2] + "/api/sessions").json()["sessions"]  # every process lists it
    assert served in [x["session_id"] for x in listed]
    with relay_on(redis_url) as (_, base):
        orphan = _create(base)["session_id"]  # its process stops: no process serves it any more
    start = time.monotonic()
    while not (_gone(cluster, served) and _gone(cluster, orphan)):
        assert time.monotonic() - start < EXPIRY_S + 5, "an idle session did not expire"
        time.sleep(0.2)
    import redis

    keys = redis.Redis.from_url(redis_url).keys(f"tabgpt:s:{orphan}:*") + redis.Redis.from_url(redis_url).keys(
        f"tabgpt:s:{served}:*")
    assert keys == []


def test_a_restarted_redis_with_persistence_resumes_at_the_last_committed_round(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    aof = ("--appendonly", "yes", "--appendfsync", "always", "--save", "")
    with ExitStack() as stack:
        redis_proc = stack.enter_context(redis_server(tmp_path, port, *aof))
        _, base = stack.enter_context(relay_on(url))
        s = _create(base, quorum=1, round_seconds=30, grace_seconds=5)
        sid = s["session_id"]
        d = _deltas(s["param_count"], 2)
        w = Worker(base, sid, "w")
        w.pump("weights")
        w.ws.send(w.client.delta_frame(d[0], tokens=64, loss=3.0))
        committed = w.pump("update")["weights_sha256"]
        redis_proc.send_signal(signal.SIGKILL)  # no goodbye: what it fsynced is all it keeps
        redis_proc.wait(10)
        with redis_server(tmp_path, port, *aof):
            with relay_on(url) as (_, fresh):  # a process that never saw the session
                status = httpx.get(f"{fresh}/api/sessions/{sid}").json()
                assert status["round"] == 1 and status["weights_sha256"] == committed
            deadline = time.monotonic() + 10
            while True:  # the relay's own connection to Redis comes back
                w.ws.send(w.client.delta_frame(d[1], tokens=64, loss=2.5))
                event = w._handle(w.ws.recv(timeout=5))
                while event.type not in ("submit_ack", "submit_reject"):
                    event = w._handle(w.ws.recv(timeout=5))
                if event.type == "submit_ack":
                    break
                assert time.monotonic() < deadline, event.message
                time.sleep(0.2)
            closed = w.pump("update")
            assert closed["round"] == 1 and closed["weights_sha256"] != committed
        w.close()


def test_joins_racing_on_two_processes_admit_exactly_the_session_s_limit(redis_url):
    """Eight joins at once through two relay processes (two hubs on one event loop: every join
    reaches Redis before any is admitted) onto a session of three places: three are admitted, the
    other five get the single process's typed refusal."""

    async def scenario():
        settings = RelaySettings(redis_url=redis_url, redis_prefix="race-test:", max_clients_per_session=3)
        hubs = [ClusterRelay(settings), ClusterRelay(settings)]
        for hub in hubs:
            await hub.start()
        try:
            session, _, _ = await hubs[0].create({"model": "nano", "dataset": "names"}, "198.51.100.9")
            sid = session.session_id
            conns = [Connection(None, 64, TokenBucket(10, 10, time.monotonic)) for _ in range(8)]
            await asyncio.gather(*(hubs[i % 2].join(c, Join(sid, f"w{i}", None)) for i, c in enumerate(conns)))
            admitted = [c for c in conns if c.session_id == sid]
            refused = [c for c in conns if c.session_id is None]
            assert len(admitted) == 3 and len(refused) == 5
            for c in refused:
                assert json.loads(c.queue.get_nowait())["reason"] == "session_full" and c.close_code == CLOSE_POLICY
            assert len(await hubs[1]._connected(sid)) == 3
            # a place freed on one process is taken through the other
            hubs[0 if admitted[0] in hubs[0].conns.values() else 1].disconnect(admitted[0])
            late = Connection(None, 64, TokenBucket(10, 10, time.monotonic))
            deadline = time.monotonic() + 2
            while late.session_id is None:
                assert time.monotonic() < deadline
                late = Connection(None, 64, TokenBucket(10, 10, time.monotonic))
                await asyncio.sleep(0.02)
                await hubs[1].join(late, Join(sid, "late", None))
            assert len(await hubs[0]._connected(sid)) == 3
        finally:
            for hub in hubs:
                await hub.stop()

    asyncio.run(scenario())
