"""server.connection: bounded send queues (a slow reader never delays others) and the rate limit."""

from __future__ import annotations

import asyncio

import numpy as np

from relay_world import FakeClock, delta_frame
from server.connection import CLOSE_SLOW_READER, Connection, TokenBucket
from server.hub import Relay
from server.protocol import Join
from server.settings import RelaySettings


class FakeSocket:
    """Records what is sent; a `stuck` socket blocks forever on its first send (a peer not reading)."""

    def __init__(self, stuck: bool = False):
        self.stuck, self.sent, self.closed = stuck, [], None

    async def send_text(self, data):
        await self._send(data)

    async def send_bytes(self, data):
        await self._send(data)

    async def _send(self, data):
        if self.stuck:
            await asyncio.Event().wait()
        self.sent.append(data)

    async def close(self, code, reason=""):
        self.closed = code


async def drain():
    """Let every runnable task (the senders) run until it blocks."""
    for _ in range(50):
        await asyncio.sleep(0)


def test_token_bucket_refills_on_the_injected_clock():
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.5)
    assert bucket.take() and not bucket.take()
    clock.advance(100)
    assert sum(bucket.take() for _ in range(10)) == 3


def test_a_stuck_reader_is_dropped_and_the_broadcast_reaches_the_others():
    async def scenario():
        clock = FakeClock()
        settings = RelaySettings(send_queue_frames=8)
        relay = Relay(settings, clock)
        config = relay.new_config({"model": "nano", "dataset": "names", "quorum": 1})
        session, _ = relay.add_session(config, relay.initial_weights(config))
        sockets = {"fast": FakeSocket(), "stuck": FakeSocket(stuck=True)}
        conns = {}
        for name, sock in sockets.items():
            conn = Connection(sock, settings.send_queue_frames, TokenBucket(10, 10, clock))
            conn.start()
            relay.join(conn, Join(session.session_id, name, None))
            conns[name] = conn
        await drain()
        delta = np.full(config.param_count, 1e-3, np.float32)
        for r in range(4):  # each round queues round_closed, UPDATE and round_started for everyone
            await relay.submit(conns["fast"], delta_frame(delta, r, 8))
            await drain()
        assert conns["stuck"].dropped.is_set() and conns["stuck"].close_code == CLOSE_SLOW_READER
        assert not conns["fast"].dropped.is_set()
        rounds_closed = [m for m in sockets["fast"].sent if isinstance(m, str) and '"round_closed"' in m]
        assert len(rounds_closed) == 4 and session.round == 4
        for conn in conns.values():
            relay.disconnect(conn)
            await conn.finish(timeout=0.01)

    asyncio.run(scenario())


def test_close_flushes_queued_frames_first():
    async def scenario():
        sock = FakeSocket()
        conn = Connection(sock, 4, TokenBucket(1, 1, FakeClock()))
        conn.start()
        conn.send("one")
        conn.send(b"two")
        conn.close(1012, "restart")
        conn.send("after close is ignored")
        await asyncio.wait_for(conn.dropped.wait(), 1)
        assert sock.sent == ["one", b"two"] and sock.closed == 1012
        await conn.finish()

    asyncio.run(scenario())


class GatedSocket(FakeSocket):
    """Blocks every send until `gate` is set (a tab busy with a long step), then records them."""

    def __init__(self):
        super().__init__()
        self.gate = asyncio.Event()

    async def _send(self, data):
        await self.gate.wait()
        self.sent.append(data)


def test_superseded_status_frames_take_one_queue_place_and_the_newest_is_sent_in_order():
    async def scenario():
        sock = GatedSocket()
        conn = Connection(sock, 4, TokenBucket(1, 1, FakeClock()))
        conn.start()
        conn.send("first")  # taken by the sender, which then waits on the gate
        await drain()
        conn.send("live 1", latest=True)
        conn.send("round_closed")
        for i in range(2, 40):  # far more than the queue holds: the queued one is replaced each time
            conn.send(f"live {i}", latest=True)
        conn.send(b"UPDATE")
        assert not conn.dropped.is_set() and conn.queue.qsize() == 3
        sock.gate.set()
        await drain()
        assert sock.sent == ["first", "live 39", "round_closed", b"UPDATE"]
        conn.send("live 40", latest=True)  # none queued any more: it takes a place again
        await drain()
        assert sock.sent[-1] == "live 40"
        conn.close(1000, "bye")
        await asyncio.wait_for(conn.dropped.wait(), 1)
        await conn.finish()

    asyncio.run(scenario())


def test_ordinary_frames_still_drop_a_reader_whose_queue_is_full():
    async def scenario():
        conn = Connection(FakeSocket(stuck=True), 4, TokenBucket(1, 1, FakeClock()))
        conn.start()
        conn.send("taken by the stuck sender")
        await drain()
        for i in range(4):
            conn.send(f"frame {i}")
        assert not conn.dropped.is_set()
        conn.send("one too many")
        assert conn.dropped.is_set() and conn.close_code == CLOSE_SLOW_READER
        await conn.finish(timeout=0.01)

    asyncio.run(scenario())
