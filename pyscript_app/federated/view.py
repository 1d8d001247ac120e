"""What the federated page shows, as HTML strings (pure Python; browser/federated_page.py writes them).

As on the playground, a worker reaches the DOM through one synchronous round trip per access, so a
render is ONE string for one innerHTML write. Every value that reaches the page goes through
html.escape. Test hooks (CONTRACTS §3): session-id, round, devices; and device rows, live-loss,
loss-chart, timeline, traffic, messages, my-state, round-log (JSON of this tab's rounds, hidden).
"""

from __future__ import annotations

import json
import math
from html import escape

from .frames import HEADER_SIZE
from .dashboard import Dashboard

WIDTH, HEIGHT = 640, 200
PAD_L, PAD_R, PAD_T, PAD_B = 44, 12, 12, 28
GLOBAL_COLOR, LOCAL_COLOR = "#3f51b5", "#e65100"
STATE_TEXT = {"idle": "idle", "connecting": "connecting to the relay…", "loading": "loading data and the model…",
              "training": "training", "submitted": "delta sent, waiting for the round to close",
              "waiting": "waiting for the next round", "left": "left the session", "error": "stopped"}


def fmt_bytes(n: int) -> str:
    if n < 10_000:
        return f"{n:,} B"
    if n < 10_000_000:
        return f"{n / 1e3:,.1f} kB"
    return f"{n / 1e6:,.1f} MB"


def _loss(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.4f}"


def session_html(d: Dashboard, share: str) -> str:
    sid = d.session_id or ""
    left = "" if d.remaining_ms is None or d.phase == "idle" else f", {d.remaining_ms / 1000:.0f} s left"
    quorum = f"{d.submissions} of {d.quorum} deltas" if d.quorum else ""
    link = (f'<a data-testid="share-url" href="{escape(share)}">{escape(share)}</a>' if sid and share else "–")
    return ('<dl class="tabgpt-stats">'
            f'<dt>session</dt><dd><code data-testid="session-id">{escape(sid) or "–"}</code></dd>'
            f"<dt>share</dt><dd>{link}</dd>"
            f'<dt>round</dt><dd><span data-testid="round" data-round="{d.round if d.round is not None else ""}" '
            f'data-phase="{escape(d.phase)}">{d.round if d.round is not None else "–"}</span> '
            f"({escape(d.phase)}{left}; {quorum})</dd>"
            f'<dt>this tab</dt><dd><span data-testid="my-state" data-state="{escape(d.mine)}">'
            f"{escape(STATE_TEXT.get(d.mine, d.mine))}</span>"
            + (f" — step {d.step} / {d.steps}" if d.mine == "training" else "") + "</dd></dl>")


def devices_html(d: Dashboard) -> str:
    rows = "".join(
        f'<tr data-testid="device" data-name="{escape(x["name"])}" data-state="{x["state"]}" '
        f'data-tokens="{x["tokens"]}"><td>{escape(x["name"]) or "(no name)"}{" (this tab)" if x["me"] else ""}</td>'
        f'<td>{x["state"]}</td><td>{x["tokens"]:,}</td></tr>' for x in d.devices())
    if not rows:
        rows = '<tr><td colspan="3">no device connected</td></tr>'
    return ('<table data-testid="devices" class="tabgpt-devices"><thead><tr><th>device</th><th>state</th>'
            f"<th>tokens contributed</th></tr></thead><tbody>{rows}</tbody></table>")


def loss_chart_svg(glob: list[tuple[int, float]], local: list[tuple[int, float]]) -> str:
    """The loss per round: the relay's token-weighted global loss and this tab's local loss."""
    values = [v for _, v in glob + local]
    if not values:
        return '<p data-testid="loss-chart">The chart starts when the first round closes.</p>'
    lo, hi = min(values) * 0.95, max(values) * 1.05
    last = max(r for r, _ in glob + local)
    pw, ph = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def sx(r: float) -> float:
        return PAD_L + pw * r / max(1, last)

    def sy(v: float) -> float:
        return PAD_T + ph * (hi - v) / max(hi - lo, 1e-9)

    def line(points, color: str, testid: str) -> str:
        if not points:
            return ""
        coords = " ".join(f"{sx(r):.1f},{sy(v):.1f}" for r, v in points)
        dots = "".join(f'<circle cx="{sx(r):.1f}" cy="{sy(v):.1f}" r="3" fill="{color}"/>' for r, v in points[-60:])
        return f'<polyline data-testid="{testid}" fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>{dots}'

    ticks = "".join(f'<text x="{PAD_L - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>'
                    f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" stroke="#eee"/>'
                    for v in (lo + (hi - lo) * i / 4 for i in range(5)))
    return (f'<svg data-testid="loss-chart" class="tabgpt-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="loss per round" font-size="11" fill="#555">{ticks}'
            f'<text x="{PAD_L}" y="{HEIGHT - 8}">round 0</text>'
            f'<text x="{WIDTH - PAD_R}" y="{HEIGHT - 8}" text-anchor="end">round {last}</text>'
            f'<text x="{(PAD_L + WIDTH) / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle">'
            f'<tspan fill="{GLOBAL_COLOR}">■ global (all devices)</tspan>  '
            f'<tspan fill="{LOCAL_COLOR}">■ this tab, local</tspan></text>'
            + line(glob, GLOBAL_COLOR, "chart-global") + line(local, LOCAL_COLOR, "chart-local") + "</svg>")


def loss_html(d: Dashboard) -> str:
    live = (f'<span data-testid="live-loss" data-value="{d.live_loss!r}">{_loss(d.live_loss)}</span> '
            f"({d.live_clients} device{'s' if d.live_clients != 1 else ''} reporting)"
            if d.live_loss is not None else '<span data-testid="live-loss">–</span>')
    glob, local = d.loss_points()
    return (f'<p>Live loss (token-weighted, latest report of each device): {live}; this tab: '
            f"{_loss(d.local_loss)}</p>" + loss_chart_svg(glob, local))


def timeline_html(d: Dashboard) -> str:
    """Per round, newest first: what each device sent, when, and with what weight in the mean."""
    blocks = []
    for r in d.timeline_rounds():
        closed, opened = r["closed"], r["opened_ms"]
        head = (f"closed with {closed['contributors']} delta(s), {closed['tokens']:,} tokens, loss "
                f"{_loss(closed['loss'])}" + (f", {(closed['at_ms'] - opened) / 1000:.1f} s after it opened"
                                               if opened else "") if closed else "open")
        items = "".join(
            f'<li data-testid="timeline-delta" data-round="{r["round"]}" data-name="{escape(t["name"])}">'
            f'<strong>{escape(t["name"]) or t["client_id"][:8]}</strong> sent {t["tokens"]:,} tokens'
            + (f" at +{(t['at_ms'] - opened) / 1000:.1f} s" if opened else "")
            + f", loss {_loss(t['loss'])}"
            + (f", weight {100 * t['weight']:.0f}%" if "weight" in t else ", not yet aggregated")
            + "</li>" for t in sorted(r["deltas"], key=lambda t: t["at_ms"]))
        blocks.append(f'<li><strong>round {r["round"]}</strong>: {escape(head)}<ul>{items}</ul></li>')
    body = "".join(blocks) or "<li>no delta received yet</li>"
    return f'<ol data-testid="timeline" class="tabgpt-timeline" reversed>{body}</ol>'


def traffic_html(d: Dashboard) -> str:
    """What leaves this device, per round, measured from the frames it actually sent."""
    P = int(d.config["param_count"]) if d.config else 0
    rows = "".join(
        f'<tr data-testid="traffic-round" data-round="{x["round"]}" data-sent="{x["sent"]}" data-delta="{x["delta"]}">'
        f'<td>{x["round"]}</td><td>{fmt_bytes(x["delta"])}</td><td>{fmt_bytes(x["sent"] - x["delta"])}</td>'
        f'<td>{fmt_bytes(x["sent"])}</td><td>{fmt_bytes(x["received"])}</td></tr>' for x in d.rounds[-10:])
    expected = (f"For this session's {P:,} weights a delta is {fmt_bytes(HEADER_SIZE + 2 * P)} "
                f"(a {HEADER_SIZE}-byte header and 2 bytes per weight), and so is each update received. "
                if P else "")
    return ('<div data-testid="traffic">'
            "<p><strong>Sent each round:</strong> the change this tab made to the weights (one 16-bit number per "
            "weight), how many tokens it trained on and its mean loss; a loss report about once a second; "
            "the name you chose, once, when joining. <strong>Never sent:</strong> the training text (every "
            "device reads this site's copy of the data set), the optimizer state, or anything else in this "
            f"browser. {expected}WEIGHTS received when joining: {fmt_bytes(d.weights_bytes)}.</p>"
            '<table class="tabgpt-traffic"><thead><tr><th>round</th><th>delta sent</th><th>other messages sent</th>'
            f"<th>total sent</th><th>received</th></tr></thead><tbody>{rows}</tbody></table></div>")


def messages_html(d: Dashboard) -> str:
    items = "".join(f'<li data-level="{m.level}">{escape(m.text)}</li>' for m in reversed(d.messages))
    return f'<ul data-testid="messages" class="tabgpt-messages">{items}</ul>'


def round_log_html(d: Dashboard) -> str:
    """Hidden JSON for tests and the curious: the weights this tab loaded whole (`joined`: the first;
    `loaded`: every one, W_round, on joining and on each resume) and held after each round it saw
    close (`rounds`: W_round+1)."""
    log = {"joined": d.joined, "loaded": d.loaded,
           "rounds": [{"round": x["round"], "sha256": x["sha256"]} for x in d.rounds]}
    return f'<pre hidden data-testid="round-log">{escape(json.dumps(log))}</pre>'


def dashboard_html(d: Dashboard, share: str) -> str:
    return (session_html(d, share) + "<h3>Devices</h3>" + devices_html(d) + "<h3>Loss</h3>" + loss_html(d)
            + "<h3>Messages</h3>" + messages_html(d) + "<h3>Round timeline</h3>" + timeline_html(d)
            + "<h3>What leaves your device</h3>" + traffic_html(d) + round_log_html(d))
