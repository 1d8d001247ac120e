"""The live loss chart as an SVG string (pure Python, no libraries): train and val loss against
the step, with the ln(V) baseline (the loss of a uniform guess over V tokens, where training starts)."""

from __future__ import annotations

import math

WIDTH, HEIGHT = 640, 240
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 12, 12, 28
TRAIN_COLOR, VAL_COLOR, BASELINE_COLOR = "#3f51b5", "#e65100", "#9e9e9e"


def _polyline(points, sx, sy, color: str, testid: str) -> str:
    coords = " ".join(f"{sx(s):.1f},{sy(v):.1f}" for s, v in points)
    marker = "".join(f'<circle cx="{sx(s):.1f}" cy="{sy(v):.1f}" r="2.5" fill="{color}"/>' for s, v in points)
    return (f'<polyline data-testid="{testid}" fill="none" stroke="{color}" stroke-width="2" '
            f'points="{coords}"/>' + (marker if len(points) <= 60 else ""))


def loss_chart_svg(train: list[tuple[int, float]], val: list[tuple[int, float]], total_steps: int,
                   vocab_size: int) -> str:
    """<svg> of train (step, loss) and val (step, loss) points on 0..total_steps, baseline ln(V)."""
    baseline = math.log(vocab_size)
    values = [v for _, v in train + val if math.isfinite(v)]
    y_hi = max([baseline] + values) * 1.05
    y_lo = max(0.0, min([baseline] + values) * 0.9)
    x_hi = max(1, total_steps)
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def sx(step: float) -> float:
        return PAD_LEFT + plot_w * min(step, x_hi) / x_hi

    def sy(value: float) -> float:
        return PAD_TOP + plot_h * (y_hi - value) / max(y_hi - y_lo, 1e-9)

    ticks = "".join(
        f'<text x="{PAD_LEFT - 6}" y="{sy(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>'
        f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{sy(v):.1f}" y2="{sy(v):.1f}" stroke="#eee"/>'
        for v in (y_lo + (y_hi - y_lo) * i / 4 for i in range(5)))
    base_y = sy(baseline)
    parts = [
        f'<svg class="tabgpt-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="training and validation loss" font-size="11" fill="#555">',
        ticks,
        f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{base_y:.1f}" y2="{base_y:.1f}" '
        f'stroke="{BASELINE_COLOR}" stroke-dasharray="5 4"/>',
        f'<text x="{WIDTH - PAD_RIGHT}" y="{base_y - 4:.1f}" text-anchor="end">ln(V) = {baseline:.2f}</text>',
        f'<text x="{PAD_LEFT}" y="{HEIGHT - 8}">0</text>',
        f'<text x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 8}" text-anchor="end">step {x_hi}</text>',
        f'<text x="{(PAD_LEFT + WIDTH) / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle">'
        f'<tspan fill="{TRAIN_COLOR}">■ train</tspan>  <tspan fill="{VAL_COLOR}">■ val</tspan></text>',
    ]
    if train:
        parts.append(_polyline(train, sx, sy, TRAIN_COLOR, "chart-train"))
    if val:
        parts.append(_polyline(val, sx, sy, VAL_COLOR, "chart-val"))
    parts.append("</svg>")
    return "".join(parts)
