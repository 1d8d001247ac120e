"""federated/view.py: the page's HTML, with the CONTRACTS §3 test hooks and escaped values."""

import json
import re

from pyscript_app.federated.dashboard import Dashboard
from pyscript_app.federated.view import dashboard_html, fmt_bytes, loss_chart_svg, traffic_html
from test_federated_dashboard import CONFIG, _status


def _dash() -> Dashboard:
    d = Dashboard("tab-a")
    d.on_event("joined", {"client_id": "me", "round": 1, "config": CONFIG, "resumed": False})
    d.on_event("weights", {"round": 1, "sha256": "a" * 64, "bytes": 428})
    d.on_status(_status(clients=[{"client_id": "me", "name": "<b>tab</b>", "joined": 1}]))
    d.on_event("round", {"round": 1, "sha256": "c" * 64, "sent": 400, "delta": 228, "received": 600, "update": 228})
    return d


def test_the_dashboard_has_the_contract_test_hooks():
    html = dashboard_html(_dash(), "http://h/federated/?session=" + "S" * 22)
    for testid in ("session-id", "round", "devices", "live-loss", "loss-chart", "timeline", "traffic", "messages",
                   "my-state", "round-log", "share-url"):
        assert f'data-testid="{testid}"' in html, testid
    assert 'data-testid="round" data-round="1"' in html
    log = json.loads(re.search(r'data-testid="round-log">([^<]*)<', html)[1].replace("&quot;", '"'))
    assert log == {"joined": {"round": 1, "sha256": "a" * 64}, "loaded": [{"round": 1, "sha256": "a" * 64}],
                   "rounds": [{"round": 1, "sha256": "c" * 64}]}


def test_names_are_escaped_and_the_timeline_shows_weights():
    html = dashboard_html(_dash(), "")
    assert "<b>tab</b>" not in html and "&lt;b&gt;tab&lt;/b&gt;" in html
    assert "sent 192 tokens" in html and "weight 50%" in html and "not yet aggregated" in html
    assert "+1.0 s" in html  # round 1's delta came 1.0 s after round 0 closed


def test_traffic_states_what_leaves_and_the_measured_bytes():
    html = traffic_html(_dash())
    assert 'data-testid="traffic-round" data-round="1" data-sent="400" data-delta="228"' in html
    assert "228 B" in html and "Never sent" in html and "228 B (a 28-byte header and 2 bytes per weight)" in html
    assert fmt_bytes(12_345) == "12.3 kB" and fmt_bytes(53_000_028) == "53.0 MB"


def test_the_loss_chart_draws_the_global_and_local_lines():
    svg = loss_chart_svg([(0, 6.9), (1, 6.5)], [(0, 6.8)])
    assert 'data-testid="chart-global"' in svg and 'data-testid="chart-local"' in svg
    assert "round 1" in svg
    assert "starts when the first round closes" in loss_chart_svg([], [])
