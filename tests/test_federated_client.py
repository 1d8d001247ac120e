"""federated/client.py (the browser's round loop) against the real relay (uvicorn on loopback),
natively: a `websockets` link and the GPU round model on the native executor.

Two clients complete rounds with the relay's weights (sha256) after each one; the bytes they count
are the real frame sizes; a restarted relay is rejoined with the client token without losing a
committed round; a refused join and diverged weights end the loop with a typed error."""

import asyncio
import json
import signal

import httpx
import pytest

from _federated import gpu_model_factory, random_tokens
from _gpu import gpu  # noqa: F401
from pyscript_app.federated.client import FederatedClient, FederatedError, Link
from pyscript_app.federated.frames import DTYPE_F16, DTYPE_F32, HEADER_SIZE, KIND_UPDATE, KIND_WEIGHTS, encode_frame
from pyscript_app.federated.worker import ws_connector, ws_url
from _relay_process import free_port, relay_process

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(120)]
TOKENS = random_tokens(1024)


def _create(base: str, **body) -> dict:
    body = {"model": "nano", "dataset": "names", "batch": 4, "max_local_steps": 3, "round_seconds": 30,
            "grace_seconds": 5, **body}
    r = httpx.post(base + "/api/sessions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def __call__(self, kind: str, info: dict) -> None:
        self.events.append((kind, info))

    def of(self, kind: str) -> list[dict]:
        return [info for k, info in self.events if k == kind]


def _client(gpu, base, sid, name, rounds, **kw) -> tuple[FederatedClient, Recorder]:
    rec = Recorder()
    return FederatedClient(ws_connector(ws_url(base)), sid, name, gpu_model_factory(gpu, TOKENS), rec,
                           rounds=rounds, **kw), rec


def test_two_clients_finish_three_rounds_holding_the_relays_weights(gpu):
    with relay_process() as (_, base):
        s = _create(base, quorum=2)
        sid, P = s["session_id"], s["param_count"]
        clients = [_client(gpu, base, sid, f"tab-{i}", rounds=3) for i in range(2)]

        async def go():
            return await asyncio.wait_for(asyncio.gather(*(c.run() for c, _ in clients)), 90)

        assert asyncio.run(go()) == ["rounds", "rounds"]
        status = httpx.get(f"{base}/api/sessions/{sid}").json()
    assert status["round"] == 3 and [h["contributors"] for h in status["history"]] == [2, 2, 2]
    rounds = [rec.of("round") for _, rec in clients]
    for r in range(3):
        assert rounds[0][r]["sha256"] == rounds[1][r]["sha256"]
        assert rounds[0][r]["delta"] == HEADER_SIZE + 2 * P  # the f16 DELTA frame, as sent
        assert rounds[0][r]["update"] == HEADER_SIZE + 2 * P  # the f16 UPDATE frame, as received
        assert rounds[0][r]["sent"] >= rounds[0][r]["delta"]  # plus its loss pings (JSON), at most one a second
    assert rounds[0][0]["sent"] > rounds[0][0]["delta"]  # the first ping goes out after the first step
    assert rounds[0][-1]["sha256"] == status["weights_sha256"]
    joined = clients[0][1].of("weights")[0]
    assert joined["round"] == 0
    deltas = [t for t in status["timeline"] if t["event"] == "delta"]
    assert sorted(t["name"] for t in deltas if t["round"] == 0) == ["tab-0", "tab-1"]
    assert all(t["weight"] == pytest.approx(0.5) for t in deltas)
    assert sorted(status["contributed"].values()) == [3 * 3 * 4 * 16] * 2  # rounds * H * B * T


def test_a_client_resumes_after_the_relay_restarts_without_losing_a_committed_round(gpu, tmp_path):
    port = free_port()

    async def go():
        client, rec = _client(gpu, base, sid, "stayer", rounds=4, backoff_s=0.2)
        task = asyncio.ensure_future(client.run())
        while not rec.of("round"):
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # round 0 is committed; the relay checkpointed it first
        await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10)
        return client, rec, task

    with relay_process(tmp_path, port) as (proc, base):
        sid = _create(base, quorum=1)["session_id"]
        loop = asyncio.new_event_loop()
        client, rec, task = loop.run_until_complete(go())
    with relay_process(tmp_path, port) as (_, base):
        assert loop.run_until_complete(asyncio.wait_for(task, 60)) == "rounds"
        loop.close()
        status = httpx.get(f"{base}/api/sessions/{sid}").json()
    assert rec.of("disconnected") and any(j["resumed"] for j in rec.of("joined"))
    # No committed round is lost: the relay's history runs 0, 1, 2, ... without a gap across the restart.
    # (With quorum 1 a round can close just before the SIGTERM lands; its round_closed may then never
    # reach the client, which resumes from the checkpointed weights: the client may skip SEEING a round.)
    assert [h["round"] for h in status["history"]] == list(range(status["round"]))
    done = [r["round"] for r in rec.of("round")]
    assert len(done) == 4 and done[0] == 0 and done == sorted(set(done))
    assert status["round"] == done[-1] + 1
    assert rec.of("round")[-1]["sha256"] == status["weights_sha256"]


def test_an_unknown_session_is_refused_with_a_typed_error(gpu):
    with relay_process() as (_, base):
        client, rec = _client(gpu, base, "x" * 22, "lost", rounds=1)
        with pytest.raises(FederatedError) as e:
            asyncio.run(client.run())
    assert e.value.reason == "refused" and "session" in str(e.value)
    assert [m["reason"] for m in rec.of("message") if m["type"] == "error"] == ["unknown_session"]


def test_a_session_deleted_while_the_client_reconnects_has_ended_for_it(gpu, tmp_path):
    """The owner deletes the session while this client waits to reconnect (the relay restarted): its
    rejoin is refused as unknown_session, and for a client that was in the session that means the
    session has ended (run() returns "session_closed", as if it had been connected), not an error."""
    port = free_port()
    gate: list[asyncio.Event] = []  # reconnects wait on it: the deletion happens while the client is away

    def gated(connect):
        async def again():
            if gate[0].is_set() or not rec.of("joined"):
                return await connect()
            await gate[0].wait()
            return await connect()
        return again

    async def joined_then_relay_stops():
        gate.append(asyncio.Event())
        client = FederatedClient(gated(ws_connector(ws_url(base))), sid, "away", gpu_model_factory(gpu, TOKENS), rec,
                                 backoff_s=0.1)
        task = asyncio.ensure_future(client.run())
        while not rec.of("weights"):
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10)
        return task

    rec = Recorder()
    with relay_process(tmp_path, port) as (proc, base):
        s = _create(base, quorum=2)  # one client: no round closes, it waits for the round
        sid = s["session_id"]
        loop = asyncio.new_event_loop()
        task = loop.run_until_complete(joined_then_relay_stops())
    with relay_process(tmp_path, port) as (_, base):
        r = httpx.delete(f"{base}/api/sessions/{sid}", headers={"Authorization": f"Bearer {s['owner_token']}"})
        assert r.status_code in (200, 204), r.text
        gate[0].set()
        assert loop.run_until_complete(asyncio.wait_for(task, 30)) == "session_closed"
        loop.close()
    assert rec.of("disconnected") and len(rec.of("joined")) == 1  # it never got back in
    # reported as the session_closed it missed (pages and workers show it as the session's end)
    assert [m for m in rec.of("message") if m["type"] in ("error", "session_closed")] == [
        {"type": "session_closed", "reason": "gone while this client was reconnecting"}]


def test_weights_that_differ_from_the_relays_end_the_loop(gpu):
    class Liar:
        tokens_per_step = 1

        async def load_weights(self, payload):
            return "0" * 64

    async def make(config):
        return Liar()

    with relay_process() as (_, base):
        sid = _create(base)["session_id"]
        client = FederatedClient(ws_connector(ws_url(base)), sid, "liar", make)
        with pytest.raises(FederatedError) as e:
            asyncio.run(client.run())
    assert e.value.reason == "diverged"


def test_an_unreachable_relay_is_retried_then_given_up():
    client = FederatedClient(ws_connector(f"ws://127.0.0.1:{free_port()}/ws"), "s", "n", None,
                             reconnect_tries=2, backoff_s=0.01)
    with pytest.raises(FederatedError) as e:
        asyncio.run(client.run())
    assert e.value.reason == "unreachable"


class _InstantRelay(Link):
    """A relay whose rounds close the moment a DELTA arrives: join -> join_ack + WEIGHTS; each DELTA
    -> round_closed + UPDATE (zeros) + round_started. It counts the loss_pings it is sent."""

    P, SHA = 4, "0" * 64

    def __init__(self) -> None:
        super().__init__()
        self.round, self.pings = 0, 0

    def _put(self, **msg) -> None:
        self.inbox.put_nowait(json.dumps(msg))

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, bytes):  # a DELTA for self.round: the round closes at once
            r, self.round = self.round, self.round + 1
            self._put(type="round_closed", round=r, loss=1.0, contributors=2, tokens=64, next_round=r + 1,
                      weights_sha256=self.SHA)
            self.inbox.put_nowait(encode_frame(KIND_UPDATE, DTYPE_F16, [0.0] * self.P, round=r, tokens=64))
            self._put(type="round_started", round=r + 1, data_seed=r + 1, phase="training", deadline_ms=0,
                      remaining_ms=60_000)
        elif json.loads(data)["type"] == "loss_ping":
            self.pings += 1
        else:  # the join
            config = {"max_local_steps": 2, "grace_seconds": 5, "param_count": self.P}
            self._put(type="join_ack", client_id="c", client_token="t", round=0, config=config, data_seed=0,
                      weights_sha256=self.SHA, phase="training", deadline_ms=0, remaining_ms=60_000)
            self.inbox.put_nowait(encode_frame(KIND_WEIGHTS, DTYPE_F32, [0.0] * self.P, round=0))

    def close(self) -> None:
        pass


class _NullModel:
    """A round model that trains nothing: every step's loss is 1, every delta zero."""

    tokens_per_step = 32

    async def load_weights(self, payload) -> str:
        return _InstantRelay.SHA

    async def apply_update(self, payload, dtype) -> str:
        return _InstantRelay.SHA

    async def step(self, data_seed, local_step, global_step) -> None:
        pass

    async def losses(self) -> list[float]:
        return [1.0]

    async def delta_f16(self) -> bytes:
        return bytes(2 * _InstantRelay.P)


def test_loss_pings_stay_at_one_a_second_however_fast_rounds_close():
    # Rounds that close within the same second (a small model, a few local steps) must not each add
    # a loss_ping to their DELTA: past the relay's rate limit (20 messages/s) those pings are refused
    # and struck, and the connection is closed. The clock never moves: one ping in all.
    link = _InstantRelay()

    async def connect():
        return link

    async def make(config):
        return _NullModel()

    client = FederatedClient(connect, "s", "n", make, rounds=50, clock=lambda: 0.0)
    assert asyncio.run(asyncio.wait_for(client.run(), 10)) == "rounds"
    assert (link.round, link.pings) == (50, 1)


def test_a_relay_never_reached_is_reported_as_not_connected_then_unreachable():
    async def refuse():
        raise ConnectionRefusedError("refused")

    rec = Recorder()
    client = FederatedClient(refuse, "s" * 32, "tab", None, rec, reconnect_tries=2, backoff_s=0.001)
    with pytest.raises(FederatedError, match=r"cannot reach the relay \(refused\)"):
        asyncio.run(client.run())
    assert [d["reached"] for d in rec.of("disconnected")] == [False, False]
