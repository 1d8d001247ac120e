"""server.app + server.ws in process (Starlette TestClient), time driven by a fake clock."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.websockets import WebSocketDisconnect

from pyscript_app.federated.frames import HEADER_SIZE, split_frame
from relay_world import delta_frame, recv, recv_type, recv_until, relay_world, sync


def _delta(world, session, seed, scale=1e-3):
    return (np.random.default_rng(seed).standard_normal(session["param_count"]) * scale).astype(np.float32)


def test_health_create_status_list_weights_and_validation():
    with relay_world() as w:
        assert w.client.get("/api/health").json()["status"] == "ok"
        s = w.create(quorum=3, aggregator="diloco")
        assert len(s["session_id"]) >= 22 and len(s["owner_token"]) >= 22 and s["config"]["quorum"] == 3
        status = w.status(s["session_id"])
        assert (status["round"], status["clients"], status["history"], status["quorum"]) == (0, [], [], 3)
        assert "weights" not in status and status["config"]["aggregator"] == "diloco"
        assert w.client.get("/api/sessions").json()["sessions"] == []  # listing is opt-in
        listed = w.create(listed=True)
        assert [x["session_id"] for x in w.client.get("/api/sessions").json()["sessions"]] == [listed["session_id"]]
        frame = w.client.get(f"/api/sessions/{s['session_id']}/weights")
        assert frame.headers["content-type"] == "application/octet-stream"
        header, _ = split_frame(frame.content)
        assert header.count == s["param_count"] and frame.headers["x-weights-sha256"] == status["weights_sha256"]
        bad = w.client.post("/api/sessions", json={"model": "gigantic", "quorum": -1})
        assert bad.status_code == 422 and len(bad.json()["detail"]) == 3
        json_type = {"content-type": "application/json"}
        assert w.client.post("/api/sessions", content=b"{nope", headers=json_type).status_code == 400
        assert w.client.post("/api/sessions", content=b" " * 20000, headers=json_type).status_code == 413
        assert w.client.get("/api/sessions/" + "x" * 22).status_code == 404


def test_too_many_sessions_and_delete_needs_the_owner_token():
    with relay_world(max_sessions=1) as w:
        s = w.create()
        assert w.client.post("/api/sessions", json={"model": "nano", "dataset": "d"}).status_code == 429
        url = f"/api/sessions/{s['session_id']}"
        assert w.client.delete(url).status_code == 401
        assert w.client.delete(url, headers={"Authorization": "Bearer " + "x" * 32}).status_code == 403
        with w.connect() as a, w.connect() as b:
            w.join(a, s["session_id"], "a")
            w.join(b, s["session_id"], "b")
            recv_type(a, "clients_changed")
            assert w.client.delete(url, headers={"Authorization": f"Bearer {s['owner_token']}"}).status_code == 200
            for ws in (a, b):
                assert recv(ws)["type"] == "session_closed"
                with pytest.raises(WebSocketDisconnect) as e:
                    recv(ws)
                assert e.value.code == 1000
        assert w.client.get(url).status_code == 404


def test_staggered_joins_quorum_round_late_join_and_roster():
    with relay_world() as w:
        s = w.create(quorum=2, round_seconds=30, grace_seconds=5, robust=False)  # the plain token-weighted mean
        sid = s["session_id"]
        with w.connect() as a, w.connect() as b:
            ack_a, w0 = w.join(a, sid, "a")
            w.tick(3)
            w.join(b, sid, "b")
            assert [c["name"] for c in recv_type(a, "clients_changed")["clients"]] == ["a", "b"]
            a.send_bytes(delta_frame(_delta(w, s, 1), 0, 100, loss=3.0))
            assert recv_type(a, "submit_ack")["submissions"] == 1
            b.send_bytes(delta_frame(_delta(w, s, 2), 0, 300, loss=2.0))
            assert recv_type(b, "submit_ack")["submissions"] == 2
            closed = {ws: recv_type(ws, "round_closed") for ws in (a, b)}
            updates = [recv(ws) for ws in (a, b)]
            assert updates[0] == updates[1] and closed[a] == closed[b] and closed[a]["loss"] == 2.25
            w1 = np.frombuffer(split_frame(w0)[1], "<f4") + np.frombuffer(split_frame(updates[0])[1], "<f2").astype(np.float32)
            status = w.status(sid)
            assert status["weights_sha256"] == closed[a]["weights_sha256"] == w.relay.sessions[sid].weights_sha256
            assert status["history"] == [{"round": 0, "loss": 2.25, "contributors": 2, "tokens": 400}]
            assert recv_type(a, "round_started")["round"] == 1
            with w.connect() as late:
                ack, weights = w.join(late, sid, "late")
                assert ack["round"] == 1 and np.frombuffer(split_frame(weights)[1], "<f4").tobytes() == w1.tobytes()
            assert [c["name"] for c in recv_until(a, "clients_changed")[1]["clients"]] == ["a", "b", "late"]
            assert [c["name"] for c in recv_until(a, "clients_changed")[1]["clients"]] == ["a", "b"]


def test_deadline_round_via_the_timer_and_live_loss():
    with relay_world() as w:
        s = w.create(quorum=5, round_seconds=30, grace_seconds=5)
        with w.connect() as a, w.connect() as b:
            w.join(a, s["session_id"], "a")
            w.join(b, s["session_id"], "b")
            recv_type(a, "clients_changed")
            w.tick(25)
            assert recv_type(a, "submit_request")["round"] == 0
            a.send_bytes(delta_frame(_delta(w, s, 1), 0, 64))
            recv_type(a, "submit_ack")
            a.send_text(json.dumps({"type": "loss_ping", "loss": 2.0, "tokens": 10}))
            assert recv_type(b, "submit_request") and recv_type(b, "live_loss")["loss"] == 2.0
            w.tick(5)
            assert recv_until(b, "round_closed")[1]["contributors"] == 1


@pytest.mark.parametrize("case", ["nan", "length", "tokens0", "tokens_huge", "norm", "duplicate", "stale",
                                  "replayed", "bad_magic", "unknown_type", "bad_json", "oversize_binary",
                                  "oversize_text"])
def test_faults_leave_the_weights_unchanged_and_the_others_round_completes(case):
    with relay_world(max_control_bytes=512) as w:
        s = w.create(quorum=2)
        sid = s["session_id"]
        with w.connect() as a, w.connect() as b, w.connect() as c:
            for ws, name in ((a, "a"), (b, "b"), (c, "c")):
                w.join(ws, sid, name)
            good = delta_frame(_delta(w, s, 1), 0, 64)
            a.send_bytes(good)
            recv_until(a, "submit_ack")
            sha = w.status(sid)["weights_sha256"]
            d = _delta(w, s, 2)
            sends = {
                "nan": lambda: b.send_bytes(delta_frame(np.full_like(d, np.nan), 0, 64)),
                "length": lambda: b.send_bytes(delta_frame(d[:-3], 0, 64)),
                "tokens0": lambda: b.send_bytes(delta_frame(d, 0, 0)),
                "tokens_huge": lambda: b.send_bytes(delta_frame(d, 0, 2**32 - 1)),
                "norm": lambda: b.send_bytes(delta_frame(d * 1e6, 0, 64)),
                "duplicate": lambda: a.send_bytes(delta_frame(d, 0, 64)),
                "stale": lambda: b.send_bytes(delta_frame(d, 7, 64)),
                "replayed": lambda: b.send_bytes(good),
                "bad_magic": lambda: b.send_bytes(b"NOPE" + good[4:]),
                "unknown_type": lambda: b.send_text('{"type":"become_admin"}'),
                "bad_json": lambda: b.send_text("{]"),
                "oversize_binary": lambda: b.send_bytes(good + b"\0" * (2 * s["param_count"] + 1)),
                "oversize_text": lambda: b.send_text(json.dumps({"type": "loss_ping", "pad": "x" * 600})),
            }
            sends[case]()
            offender = a if case == "duplicate" else b
            if case.startswith("oversize"):
                with pytest.raises(WebSocketDisconnect) as e:
                    recv_until(offender, "never")
                assert e.value.code == 1009
            else:
                reply = recv_until(offender, "submit_reject" if case not in ("unknown_type", "bad_json") else "error")[1]
                assert reply["reason"] == {"nan": "non_finite", "length": "shape_mismatch", "tokens0": "tokens_out_of_range",
                                           "tokens_huge": "tokens_out_of_range", "norm": "norm_too_large",
                                           "stale": "stale_round", "replayed": "duplicate", "bad_magic": "bad_header",
                                           "bad_json": "bad_json"}.get(case, case)
            assert w.status(sid)["weights_sha256"] == sha and w.status(sid)["submissions"] == 1
            c.send_bytes(delta_frame(_delta(w, s, 3), 0, 64))
            assert recv_until(c, "round_closed")[1]["contributors"] == 2
            assert recv_until(a, "round_closed")[1]["weights_sha256"] == w.status(sid)["weights_sha256"] != sha


def test_the_first_message_must_be_a_join():
    with relay_world() as w:
        s = w.create()
        for first in (lambda ws: ws.send_bytes(b"TGPT" + b"\0" * 40),
                      lambda ws: ws.send_text('{"type":"loss_ping","loss":1,"tokens":1}'),
                      lambda ws: ws.send_text('{"type":"join","session_id":"' + "z" * 22 + '"}')):
            with w.connect() as ws:
                first(ws)
                assert recv(ws)["type"] in ("submit_reject", "error")
                with pytest.raises(WebSocketDisconnect) as e:
                    recv(ws)
                assert e.value.code == 1008
        assert w.status(s["session_id"])["clients"] == []


def test_origin_allowlist():
    with relay_world(allowed_origins=("https://site.example",)) as w:
        for origin in ("http://evil.example", "https://localhost.evil.example", "null"):
            with pytest.raises(WebSocketDisconnect):
                with w.connect(origin=origin):
                    pass
        sid = w.create()["session_id"]
        for origin in ("https://site.example", "http://localhost:8000", "http://127.0.0.1:5173", "http://testserver"):
            with w.connect(origin=origin) as ws:
                assert w.join(ws, sid, "ok")[0]["type"] == "join_ack"


def test_too_many_clients_resume_supersedes_and_rate_limit():
    with relay_world(max_clients_per_session=2, rate_burst=5, rate_per_s=1.0) as w:
        s = w.create()
        sid = s["session_id"]
        with w.connect() as a, w.connect() as b, w.connect() as c:
            ack, _ = w.join(a, sid, "a")
            w.join(b, sid, "b")
            c.send_text(json.dumps({"type": "join", "session_id": sid}))
            assert recv(c)["reason"] == "session_full"
            with w.connect() as a2:
                a2.send_text(json.dumps({"type": "join", "session_id": sid, "client_token": ack["client_token"]}))
                assert recv_type(a2, "join_ack")["client_id"] == ack["client_id"]
                assert recv_until(a, "error")[1]["reason"] == "superseded"
                with pytest.raises(WebSocketDisconnect) as e:
                    recv(a)
                assert e.value.code == 4001
                for _ in range(6):
                    b.send_text('{"type":"loss_ping","loss":1,"tokens":1}')
                assert recv_until(b, "error")[1]["reason"] == "rate_limited"
            assert [x["name"] for x in w.status(sid)["clients"]] == ["b"]


def test_rounds_faster_than_the_rate_limit_all_close_and_refused_deltas_still_count():
    # The fake clock never moves, so the rate limit's bucket never refills: only its burst of 3.
    rounds = 8
    with relay_world(rate_burst=3, rate_per_s=1.0) as w:
        s = w.create(quorum=2)
        sid = s["session_id"]
        with w.connect() as a, w.connect() as b:
            w.join(a, sid, "a")
            w.join(b, sid, "b")
            recv_type(a, "clients_changed")
            for r in range(rounds):  # one DELTA per client per round, as fast as the rounds close
                for i, ws in enumerate((a, b)):
                    ws.send_bytes(delta_frame(_delta(w, s, 2 * r + i), r, 64))
                for ws in (a, b):
                    closed = recv_until(ws, "round_closed")[1]  # a discarded delta: never closes
                    assert (closed["round"], closed["contributors"]) == (r, 2)
            assert w.status(sid)["round"] == rounds
            stale = delta_frame(_delta(w, s, 99), 0, 64)
            for _ in range(3):  # the burst pays for refused deltas...
                a.send_bytes(stale)
                assert recv_until(a, "submit_reject")[1]["reason"] == "stale_round"
            a.send_bytes(stale)  # ...and past it they are refused and struck, then the socket closed
            assert recv_until(a, "error")[1]["reason"] == "rate_limited"
            with pytest.raises(WebSocketDisconnect) as e:
                for _ in range(4):
                    a.send_bytes(stale)
                recv_until(a, "never")
            assert e.value.code == 1008


def test_restart_reloads_sessions_and_committed_rounds(tmp_path):
    with relay_world(state_dir=tmp_path) as w:
        s = w.create(quorum=1)
        sid = s["session_id"]
        with w.connect() as a:
            ack, _ = w.join(a, sid, "a")
            a.send_bytes(delta_frame(_delta(w, s, 1), 0, 64))
            closed = recv_until(a, "round_closed")[1]
    with relay_world(state_dir=tmp_path) as w:
        status = w.status(sid)
        assert status["round"] == 1 and status["weights_sha256"] == closed["weights_sha256"]
        with w.connect() as a:
            again, _ = w.join(a, sid, "a", token=ack["client_token"])
            assert again["client_id"] == ack["client_id"] and again["round"] == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.binary(max_size=64).map(lambda b: b"TGPT\x01\x00\x02\x00" + b), st.binary(max_size=40),
                          st.text(max_size=60)), min_size=1, max_size=6))
def test_fuzz_frames_never_break_the_relay(frames):
    with relay_world() as w:
        s = w.create(quorum=1)
        sha = w.status(s["session_id"])["weights_sha256"]
        with w.connect() as ws:
            w.join(ws, s["session_id"], "fuzz")
            for frame in frames:
                (ws.send_bytes if isinstance(frame, bytes) else ws.send_text)(frame)
            sync(ws)
        assert w.status(s["session_id"])["weights_sha256"] == sha
        with w.connect() as ok:
            w.join(ok, s["session_id"], "ok")
            ok.send_bytes(delta_frame(np.zeros(s["param_count"], np.float32) + 1e-3, w.status(s["session_id"])["round"], 8))
            assert recv_until(ok, "round_closed")[1]["contributors"] == 1


def test_answers_carry_cors_for_localhost_pages_and_cross_origin_resource_policy():
    with relay_world() as w:
        page = "http://127.0.0.1:8000"
        r = w.client.get("/api/health", headers={"Origin": page})
        assert r.headers["access-control-allow-origin"] == page
        assert r.headers["cross-origin-resource-policy"] == "cross-origin"
        pre = w.client.options("/api/sessions", headers={"Origin": page, "Access-Control-Request-Method": "POST",
                                                         "Access-Control-Request-Headers": "content-type"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == page
        other = w.client.get("/api/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
