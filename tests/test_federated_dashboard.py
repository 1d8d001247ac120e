"""federated/dashboard.py: the page's state from the round loop's events and the relay's status."""

from pyscript_app.federated.dashboard import Dashboard

CONFIG = {"max_local_steps": 3, "quorum": 2, "param_count": 100}


def _status(**over) -> dict:
    status = {"session_id": "S" * 22, "round": 1, "phase": "training", "remaining_ms": 5000, "quorum": 2,
              "submissions": 1,
              "clients": [{"client_id": "me", "name": "tab-a", "joined": 1}, {"client_id": "w", "name": "native",
                                                                                 "joined": 2}],
              "history": [{"round": 0, "loss": 6.9, "contributors": 2, "tokens": 384}],
              "timeline": [
                  {"event": "delta", "round": 0, "client_id": "me", "name": "tab-a", "tokens": 192, "loss": 6.9,
                   "at_ms": 1000, "weight": 0.5},
                  {"event": "delta", "round": 0, "client_id": "w", "name": "native", "tokens": 192, "loss": 6.9,
                   "at_ms": 1500, "weight": 0.5},
                  {"event": "closed", "round": 0, "loss": 6.9, "contributors": 2, "tokens": 384, "at_ms": 1600},
                  {"event": "delta", "round": 1, "client_id": "w", "name": "native", "tokens": 192, "loss": 6.5,
                   "at_ms": 2600},
              ],
              "contributed": {"me": 192, "w": 192}, "weights_sha256": "f" * 64, "config": CONFIG}
    status.update(over)
    return status


def test_devices_show_who_trains_who_submitted_and_their_tokens():
    d = Dashboard("tab-a")
    d.on_event("joined", {"client_id": "me", "round": 1, "config": CONFIG, "resumed": False})
    d.on_event("step", {"round": 1, "step": 1, "steps": 3, "loss": 6.6})
    d.on_status(_status())
    assert d.devices() == [
        {"client_id": "me", "name": "tab-a", "state": "training", "me": True, "tokens": 192},
        {"client_id": "w", "name": "native", "state": "submitted", "me": False, "tokens": 192}]
    d.on_status(_status(phase="idle"))
    assert {x["state"] for x in d.devices()} == {"idle"}


def test_the_timeline_groups_deltas_by_round_newest_first_with_the_open_time():
    d = Dashboard()
    d.on_status(_status())
    rounds = d.timeline_rounds()
    assert [r["round"] for r in rounds] == [1, 0]
    assert rounds[0]["closed"] is None and rounds[0]["opened_ms"] == 1600 and len(rounds[0]["deltas"]) == 1
    assert rounds[1]["closed"]["tokens"] == 384 and rounds[1]["opened_ms"] is None


def test_rejects_errors_disconnects_and_the_sessions_end_become_readable_messages():
    d = Dashboard()
    d.on_event("message", {"type": "submit_reject", "reason": "stale_round", "message": "round 3 is not open",
                           "round": 4})
    d.on_event("message", {"type": "submit_reject", "reason": "duplicate", "message": "", "round": 4})
    d.on_event("disconnected", {"reason": "connection closed (1012)", "retry_in_s": 0.5, "attempt": 1,
                                "reached": True})
    d.on_event("disconnected", {"reason": "refused", "retry_in_s": 1.0, "attempt": 2, "reached": False})
    d.on_event("joined", {"client_id": "me", "round": 4, "config": CONFIG, "resumed": True})
    d.on_event("message", {"type": "error", "reason": "rate_limited", "message": "slow down"})
    d.on_event("message", {"type": "session_closed", "reason": "deleted"})
    levels = [m.level for m in d.messages]
    texts = [m.text for m in d.messages]
    assert levels == ["warning", "info", "warning", "warning", "info", "error", "error"]
    assert "arrived after its round had closed" in texts[0] and "retrying in 0.5 s" in texts[2]
    assert texts[2].startswith("Lost the connection") and texts[3].startswith("Cannot connect to the relay (refused)")
    assert texts[4].startswith("Reconnected") and "too many messages" in texts[5] and "has ended" in texts[6]
    assert d.mine == "left"


def test_rounds_losses_and_traffic_follow_the_events():
    d = Dashboard()
    d.on_event("joined", {"client_id": "me", "round": 0, "config": CONFIG, "resumed": False})
    d.on_event("weights", {"round": 0, "sha256": "a" * 64, "bytes": 428})
    d.on_event("message", {"type": "join_ack", "round": 0, "config": CONFIG, "phase": "training",
                           "remaining_ms": 9000})
    d.on_event("submitted", {"round": 0, "tokens": 192, "loss": 6.5, "bytes": 228, "steps": 3})
    d.on_event("message", {"type": "submit_ack", "round": 0, "submissions": 1, "quorum": 2})
    assert (d.mine, d.submissions, d.quorum) == ("submitted", 1, 2)
    d.on_event("message", {"type": "round_closed", "round": 0, "loss": 6.7, "contributors": 2, "tokens": 384,
                           "next_round": 1, "weights_sha256": "b" * 64})
    d.on_event("round", {"round": 0, "sha256": "b" * 64, "sent": 300, "delta": 228, "received": 500, "update": 228})
    assert d.round == 1 and d.history == [{"round": 0, "loss": 6.7, "contributors": 2, "tokens": 384}]
    assert d.loss_points() == ([(0, 6.7)], [(0, 6.5)])
    assert d.joined == {"round": 0, "sha256": "a" * 64} and d.weights_bytes == 428 and d.mine == "waiting"
    d.on_event("weights", {"round": 3, "sha256": "d" * 64, "bytes": 428})  # a resume loads W_3 whole
    assert d.joined["round"] == 0 and d.loaded == [{"round": 0, "sha256": "a" * 64}, {"round": 3, "sha256": "d" * 64}]
