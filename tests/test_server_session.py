"""server.session: the round state machine, driven by hand-set times (no sleeping, no sockets)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pyscript_app.config import ModelConfig
from pyscript_app.federated.frames import KIND_UPDATE, KIND_WEIGHTS, split_frame
from pyscript_app.reference.init import init_params
from relay_world import delta_frame
from server.aggregate import weights_sha256
from server.protocol import build_session_config
from server.roster import JoinRefused
from server.session import Close, Session
from server.settings import RelaySettings

T0 = 1000.0


def make_session(max_clients=4, **body) -> Session:
    body = {"model": "nano", "dataset": "names", "quorum": 2, "round_seconds": 60, "grace_seconds": 10, **body}
    cfg = build_session_config(body, RelaySettings(), init_seed=5)
    weights = init_params(ModelConfig.from_dict(cfg.model_config), cfg.init_seed)
    return Session.create(cfg, weights, max_clients=max_clients, now=T0)[0]


def inbox(effects, client_id) -> list:
    """Frames addressed to one client, in order: dicts for JSON, bytes for binary."""
    out = []
    for e in effects:
        if client_id in e.to and not isinstance(e, Close):
            out.append(json.loads(e.data) if isinstance(e.data, str) else e.data)
    return out


def types(effects, client_id) -> list[str]:
    return [m["type"] if isinstance(m, dict) else "binary" for m in inbox(effects, client_id)]


def join(session, name="w", now=T0):
    cid, _, effects = session.join(name, None, now)
    return cid, effects


def small_delta(session, seed, scale=1e-3):
    return (np.random.default_rng(seed).standard_normal(session.config.param_count) * scale).astype(np.float32)


def test_join_acks_sends_current_weights_and_announces_the_roster():
    s = make_session()
    a, effects = join(s, "a")
    assert types(effects, a) == ["join_ack", "binary", "clients_changed"]
    ack, weights = inbox(effects, a)[:2]
    assert ack["round"] == 0 and ack["config"]["param_count"] == s.config.param_count and ack["phase"] == "training"
    header, payload = split_frame(weights)
    assert header.kind == KIND_WEIGHTS and ack["weights_sha256"] == weights_sha256(np.frombuffer(payload, "<f4"))
    assert ack["deadline_ms"] == int((T0 + 60) * 1000)  # the round opened at the first join
    b, effects = join(s, "b", now=T0 + 5)
    changed = inbox(effects, a)[-1]
    assert changed["type"] == "clients_changed" and [c["name"] for c in changed["clients"]] == ["a", "b"]
    assert s.leave(a, T0 + 6)[0].to == (b,)


def test_quorum_round_applies_the_exact_token_weighted_mean():
    s = make_session(robust=False)  # the plain token-weighted mean
    (a, _), (b, _) = join(s, "a"), join(s, "b")
    w0 = s.weights.copy()
    da, db = small_delta(s, 1), small_delta(s, 2)
    ack = inbox(s.submit(a, delta_frame(da, 0, tokens=100, loss=3.0), T0 + 1), a)
    assert ack == [{"type": "submit_ack", "round": 0, "submissions": 1, "quorum": 2}]
    effects = s.submit(b, delta_frame(db, 0, tokens=300, loss=2.0), T0 + 2)
    assert types(effects, a) == ["round_closed", "binary", "round_started"]
    closed, update = inbox(effects, b)[1:3]
    fa, fb = da.astype(np.float16).astype(np.float64), db.astype(np.float16).astype(np.float64)
    expected = w0 + (100 * fa + 300 * fb) / 400
    assert np.abs(s.weights - expected).max() < 1e-6
    header, payload = split_frame(update)
    assert header.kind == KIND_UPDATE and header.round == 0 and header.tokens == 400
    client_weights = w0 + np.frombuffer(payload, "<f2").astype(np.float32)  # what every client computes
    assert client_weights.tobytes() == s.weights.tobytes()
    assert closed == {"type": "round_closed", "round": 0, "loss": 2.25, "contributors": 2, "tokens": 400,
                      "next_round": 1, "weights_sha256": weights_sha256(client_weights)}
    assert s.round == 1 and s.history == [{"round": 0, "loss": 2.25, "contributors": 2, "tokens": 400}]


def test_robust_round_clips_to_the_median_norm_and_caps_tokens_at_the_median():
    s = make_session(quorum=3)
    (a, _), (b, _), (c, _) = join(s, "a"), join(s, "b"), join(s, "c")
    w0 = s.weights.copy()
    da, db = small_delta(s, 1), small_delta(s, 2, scale=2e-3)
    forged = np.full(s.config.param_count, 0.5, np.float32)  # a huge delta with the most tokens allowed
    s.submit(a, delta_frame(da, 0, tokens=100), T0 + 1)
    s.submit(b, delta_frame(db, 0, tokens=200), T0 + 1)
    s.submit(c, delta_frame(forged, 0, tokens=s.config.max_tokens), T0 + 1)
    f16 = [d.astype(np.float16).astype(np.float64) for d in (da, db, forged)]
    clip = sorted(np.linalg.norm(d) for d in f16)[1]  # the lower median: b's norm
    scaled = [d * min(1.0, clip / np.linalg.norm(d)) for d in f16]
    expected = w0 + (100 * scaled[0] + 200 * scaled[1] + 200 * scaled[2]) / 500  # tokens capped at 200
    # the update travels in f16: 2**-11 relative, subnormal below 6e-5
    assert np.allclose(s.weights - w0, expected - w0, rtol=1e-3, atol=1e-7) and s.history[-1]["tokens"] == 500
    assert np.linalg.norm(s.weights.astype(np.float64) - w0) <= clip * 1.001  # no further than one honest delta


def test_submit_request_at_grace_then_deadline_closes_with_what_arrived():
    s = make_session(quorum=3)
    (a, _), (b, _) = join(s, "a"), join(s, "b")
    assert s.tick(T0 + 49.9) == []
    effects = s.tick(T0 + 50)
    assert inbox(effects, a) == [{"type": "submit_request", "round": 0, "phase": "grace",
                                  "deadline_ms": int((T0 + 60) * 1000), "remaining_ms": 10000}]
    assert s.tick(T0 + 55) == []  # sent once
    s.submit(a, delta_frame(small_delta(s, 1), 0, tokens=50), T0 + 56)
    effects = s.tick(T0 + 60)
    assert types(effects, b) == ["round_closed", "binary", "round_started"]
    assert s.history[-1]["contributors"] == 1 and s.round == 1


def test_a_round_without_submissions_changes_nothing_and_restarts_with_new_seeds():
    s = make_session()
    a, effects = join(s, "a")
    seed0, sha0 = inbox(effects, a)[0]["data_seed"], s.weights_sha256
    effects = s.tick(T0 + 50) + s.tick(T0 + 60)
    started = inbox(effects, a)[-1]
    assert started["type"] == "round_started" and started["round"] == 0 and started["data_seed"] != seed0
    assert s.weights_sha256 == sha0 and s.history == [] and s.deadline == T0 + 120
    s.leave(a, T0 + 61)
    assert s.tick(T0 + 120) == [] and s.phase == "idle"  # nobody here: no timer until someone joins
    b, _ = join(s, "b", now=T0 + 500)
    assert s.phase == "training" and s.deadline == T0 + 560


def test_each_client_gets_its_own_seed_every_round():
    s = make_session()
    (a, ea), (b, eb) = join(s, "a"), join(s, "b")
    seeds = {inbox(ea, a)[0]["data_seed"], inbox(eb, b)[0]["data_seed"]}
    s.submit(a, delta_frame(small_delta(s, 1), 0, 10), T0)
    effects = s.submit(b, delta_frame(small_delta(s, 2), 0, 10), T0)
    seeds |= {inbox(effects, a)[-1]["data_seed"], inbox(effects, b)[-1]["data_seed"]}
    assert len(seeds) == 4


@pytest.mark.parametrize("case", ["stale", "future", "duplicate", "replayed", "nan", "length", "tokens0",
                                  "tokens_huge", "norm", "magic"])
def test_rejections_leave_the_weights_and_the_round_untouched(case):
    s = make_session(quorum=2)
    (a, _), (b, _), (c, _) = join(s, "a"), join(s, "b"), join(s, "c")
    good = delta_frame(small_delta(s, 1), 0, tokens=64)
    s.submit(a, good, T0)
    bad_values = small_delta(s, 2)
    frame, sender = {
        "stale": (delta_frame(bad_values, 2**32 - 1, 64), b), "future": (delta_frame(bad_values, 1, 64), b),
        "duplicate": (delta_frame(bad_values, 0, 64), a), "replayed": (good, b),
        "nan": (delta_frame(np.full_like(bad_values, np.nan), 0, 64), b),
        "length": (delta_frame(bad_values[:-1], 0, 64), b), "tokens0": (delta_frame(bad_values, 0, 0), b),
        "tokens_huge": (delta_frame(bad_values, 0, s.config.max_tokens + 1), b),
        "norm": (delta_frame(np.full_like(bad_values, 100.0), 0, 64), b), "magic": (b"XXXX" + good[4:], b),
    }[case]
    sha, submitted = s.weights_sha256, dict(s.submitted)
    [reply] = inbox(s.submit(sender, frame, T0 + 1), sender)
    assert reply["type"] == "submit_reject" and reply["round"] == 0
    assert reply["reason"] == {"stale": "stale_round", "future": "stale_round", "replayed": "duplicate",
                               "nan": "non_finite", "length": "shape_mismatch", "tokens0": "tokens_out_of_range",
                               "tokens_huge": "tokens_out_of_range", "norm": "norm_too_large",
                               "magic": "bad_header"}.get(case, case)
    assert s.weights_sha256 == sha and s.submitted == submitted and s.round == 0
    effects = s.submit(c, delta_frame(small_delta(s, 3), 0, 64), T0 + 2)  # the others' round completes
    assert types(effects, a)[0] == "round_closed" and s.round == 1


def test_stale_then_retry_and_multi_round_accumulation():
    s = make_session(quorum=2, robust=False)
    (a, _), (b, _) = join(s, "a"), join(s, "b")
    expected = s.weights.copy()
    for r in range(3):
        da, db = small_delta(s, 10 + r), small_delta(s, 20 + r)
        assert inbox(s.submit(a, delta_frame(da, r + 1, 32), T0), a)[0]["reason"] == "stale_round"
        s.submit(a, delta_frame(da, r, 32), T0)  # retry with the right round
        effects = s.submit(b, delta_frame(db, r, 96, loss=1.0 + r), T0)
        update = split_frame(inbox(effects, a)[1])[1]
        expected = expected + np.frombuffer(update, "<f2").astype(np.float32)
    assert s.weights.tobytes() == expected.tobytes() and s.round == 3
    assert [h["round"] for h in s.history] == [0, 1, 2] and [h["tokens"] for h in s.history] == [128] * 3


def test_late_and_grace_period_joiners():
    s = make_session(quorum=2)
    (a, _), (b, _) = join(s, "a"), join(s, "b")
    s.submit(a, delta_frame(small_delta(s, 1), 0, 10), T0)
    s.submit(b, delta_frame(small_delta(s, 2), 0, 10), T0)
    late, effects = join(s, "late", now=T0 + 55)  # round 1 started at T0, grace from T0 + 50
    assert types(effects, late) == ["join_ack", "binary", "submit_request", "clients_changed"]
    ack, weights = inbox(effects, late)[:2]
    assert ack["round"] == 1 and ack["phase"] == "grace" and split_frame(weights)[0].round == 1
    assert np.frombuffer(split_frame(weights)[1], "<f4").tobytes() == s.weights.tobytes()
    assert inbox(s.submit(late, delta_frame(small_delta(s, 3), 1, 10), T0 + 56), late)[0]["type"] == "submit_ack"


def test_diloco_session_keeps_momentum_across_rounds():
    s = make_session(quorum=1, aggregator="diloco")
    a, _ = join(s, "a")
    w, m = s.weights.astype(np.float64), np.zeros(s.config.param_count)
    for r in range(2):
        d = small_delta(s, r)
        s.submit(a, delta_frame(d, r, 10), T0)
        d64 = d.astype(np.float16).astype(np.float64)
        m = 0.5 * m + d64  # the DiLoCo defaults: outer lr 0.7, momentum 0.5
        w = w + 0.7 * (d64 + 0.5 * m)
    assert np.abs(s.weights - w).max() < 1e-5 and s.momentum is not None


def test_roster_limits_tokens_and_resume():
    s = make_session(max_clients=2)
    a, effects = join(s, "a")
    token = inbox(effects, a)[0]["client_token"]
    join(s, "b")
    with pytest.raises(JoinRefused) as e:
        s.join("c", None, T0)
    assert e.value.reason == "session_full"
    cid, superseded, _ = s.join("a-again", token, T0)
    assert cid == a and superseded
    with pytest.raises(JoinRefused) as e:
        s.join("x", "z" * 32, T0)
    assert e.value.reason == "bad_token"
    assert s.owner_matches("nope") is False


def test_loss_pings_give_a_token_weighted_live_loss():
    s = make_session()
    (a, _), (b, _) = join(s, "a"), join(s, "b")
    s.loss_ping(a, 2.0, 100, T0)
    effects = s.loss_ping(b, 4.0, 300, T0)
    [live] = inbox(effects, a)
    assert live == {"type": "live_loss", "loss": 3.5, "clients": 2}
    assert [e.latest for e in effects] == ["live_loss"]  # a newer live_loss supersedes a queued one


def test_checkpoint_round_trip_restores_weights_history_and_tokens():
    s = make_session(quorum=1, aggregator="diloco")
    a, effects = join(s, "a")
    token = inbox(effects, a)[0]["client_token"]
    s.submit(a, delta_frame(small_delta(s, 1), 0, 10), T0)
    header, arrays = s.checkpoint()
    assert token not in json.dumps(header)  # only hashes are stored
    r = Session.from_checkpoint(json.loads(json.dumps(header)), arrays, max_clients=4)
    assert (r.round, r.history, r.weights_sha256, r.phase) == (1, s.history, s.weights_sha256, "idle")
    assert r.momentum.tobytes() == s.momentum.tobytes()
    cid, _, _ = r.join("a", token, T0 + 999)
    assert cid == a and r.phase == "training"
    arrays["weights"] = arrays["weights"].copy()
    arrays["weights"][0] += 1
    with pytest.raises(ValueError):
        Session.from_checkpoint(header, arrays, max_clients=4)


def test_close_tells_everyone_and_closes_their_sockets():
    s = make_session()
    (a, _), (b, _) = join(s, "a"), join(s, "b")
    closing, close = s.close()
    assert json.loads(closing.data)["type"] == "session_closed" and set(close.to) == {a, b} and close.code == 1000


def test_status_timeline_records_who_sent_what_when_and_its_weight():
    s = make_session(robust=False)  # the plain token-weighted mean
    (a, _), (b, _) = join(s, "a"), join(s, "b")
    s.submit(a, delta_frame(small_delta(s, 1), 0, tokens=100, loss=3.0), T0 + 1)
    pending = s.status(T0 + 1.5)["timeline"]
    assert pending == [{"event": "delta", "round": 0, "client_id": a, "name": "a", "tokens": 100, "loss": 3.0,
                        "at_ms": int((T0 + 1) * 1000)}]
    s.submit(b, delta_frame(small_delta(s, 2), 0, tokens=300, loss=2.0), T0 + 2)
    status = s.status(T0 + 3)
    deltas = [t for t in status["timeline"] if t["event"] == "delta"]
    assert [(t["name"], t["weight"]) for t in deltas] == [("a", 0.25), ("b", 0.75)]
    assert status["timeline"][-1] == {"event": "closed", "round": 0, "loss": 2.25, "contributors": 2, "tokens": 400,
                                      "at_ms": int((T0 + 2) * 1000)}
    assert status["contributed"] == {a: 100, b: 300}
    rejected = s.submit(a, delta_frame(small_delta(s, 3), 0, tokens=100), T0 + 4)  # stale: changes nothing
    assert types(rejected, a) == ["submit_reject"] and s.status(T0 + 4)["timeline"] == status["timeline"]


def test_session_ids_are_128_bit_hex_that_a_command_line_accepts():
    """Ids are pasted into `tabgpt join --session ID`: one starting with "-" would read as an option."""
    import re

    ids = {make_session().session_id for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_history_is_summarised_to_a_bounded_length_covering_every_round():
    from server.session import summarise_history

    history = []
    for r in range(1000):
        history = summarise_history(history + [{"round": r, "loss": 1.0 + r % 3, "contributors": 1 + r % 4,
                                                "tokens": 10 + r % 5}], keep=10)
        assert len(history) <= 20
    assert sum(h.get("rounds", 1) for h in history) == 1000 and history[0]["round"] == 0
    assert sum(h["tokens"] for h in history) == sum(10 + r % 5 for r in range(1000))
    assert [h["round"] for h in history[-10:]] == list(range(990, 1000))


def test_join_secrets_are_32_hex_digits_so_none_reads_as_a_cli_option():
    """`tabgpt join --join-secret SECRET` takes the secret as its own argument: one starting with "-"
    would read as an option (url-safe base64 starts with "-" once in 64)."""
    session = make_session()
    secrets_made = [session.new_join_secret() for _ in range(200)]
    assert all(len(s) == 32 and set(s) <= set("0123456789abcdef") for s in secrets_made)
    assert len(set(secrets_made)) == 200
