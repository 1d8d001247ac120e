"""What the training lesson shows, as HTML strings: the LR schedule, one training position, heat maps."""

from __future__ import annotations

from html import escape
from typing import Callable

from ..config import TrainConfig
from .training import PositionView

WIDTH, HEIGHT, PAD = 640, 200, 44
POSITIVE, NEGATIVE = "#c62828", "#1565c0"  # weights above / below zero


def lr_chart(points: list[tuple[int, float]], cfg: TrainConfig, current_step: int | None = None) -> str:
    """<svg> of the learning rate against the step (schedule.lr_at), with the current step marked."""
    last = max(1, len(points) - 1)
    top = max(lr for _, lr in points)
    plot_w, plot_h = WIDTH - PAD - 12, HEIGHT - 40

    def sx(step: float) -> float:
        return PAD + plot_w * step / last

    def sy(lr: float) -> float:
        return 12 + plot_h * (1 - lr / top)

    line = " ".join(f"{sx(s):.1f},{sy(lr):.1f}" for s, lr in points)
    parts = [f'<svg class="tg-chart" viewBox="0 0 {WIDTH} {HEIGHT}" font-size="11" data-steps="{len(points)}">',
             f'<polyline fill="none" stroke="#3f51b5" stroke-width="2" points="{line}"/>',
             f'<text x="{PAD - 6}" y="{sy(top) + 4:.1f}" text-anchor="end">{top:.2g}</text>',
             f'<text x="{PAD - 6}" y="{sy(0) + 4:.1f}" text-anchor="end">0</text>',
             f'<line x1="{PAD}" x2="{WIDTH - 12}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" stroke="#bbb"/>',
             f'<text x="{PAD}" y="{HEIGHT - 8}">step 0</text>',
             f'<text x="{WIDTH - 12}" y="{HEIGHT - 8}" text-anchor="end">step {last}</text>',
             f'<text x="{sx(cfg.warmup_steps):.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
             f"warmup ends ({cfg.warmup_steps})</text>"]
    if current_step is not None and points:
        s = min(current_step, last)
        parts.append(f'<circle cx="{sx(s):.1f}" cy="{sy(points[s][1]):.1f}" r="4" fill="#e65100"/>')
    parts.append("</svg>")
    return "".join(parts)


def schedule_text(cfg: TrainConfig) -> str:
    decay_from = int(cfg.decay_start_frac * cfg.steps)
    return (f"{cfg.steps} steps: linear warmup to lr = {cfg.lr:g} over the first {cfg.warmup_steps} steps, "
            f"constant until step {decay_from}, then a linear decay to {cfg.min_lr_frac * cfg.lr:g} "
            f"({cfg.min_lr_frac:g} × lr) at the last step.")


def adam_text(cfg: TrainConfig) -> str:
    return (f"β₁ = {cfg.beta1:g}, β₂ = {cfg.beta2:g}, ε = {cfg.adam_eps:g}, weight decay {cfg.weight_decay:g} "
            f"(on matrices only), gradients clipped to a global norm of {cfg.grad_clip:g}, "
            f"batch {cfg.batch} × {cfg.seq_len} tokens.")


def _chip(label: str, cls: str = "") -> str:
    return f'<span class="tg-tok tg-chip {cls}">{escape(label.replace(" ", "·"))}</span>'


def position_html(view: PositionView, label: Callable[[int], str]) -> str:
    """The context chips, the target, and a table of the top predictions (the target highlighted)."""
    context = "".join(_chip(label(t), "tg-current" if i == view.pos else "") for i, t in enumerate(view.context))
    rows = []
    for token, p in view.top:
        hit = ' class="tg-hit"' if token == view.target else ""
        rows.append(f"<tr{hit}><td><code>{escape(label(token))}</code></td><td class=\"tg-num\">{100 * p:.1f} %</td>"
                    f'<td><span class="tg-bar" style="width:{max(1, round(200 * p))}px"></span></td></tr>')
    in_top = any(token == view.target for token, _ in view.top)
    verdict = "in the model's top guesses" if in_top else "not among the model's top guesses"
    return (f'<div data-position="{view.pos}" data-loss="{view.loss:.4f}">'
            f'<p><strong>Input context</strong> (positions 0…{view.pos}): {context}</p>'
            f"<p><strong>Target</strong> (the token at position {view.pos + 1}): {_chip(label(view.target), 'tg-target')} "
            f"— the model gives it {100 * view.target_prob:.2f} %, a loss of −ln p = {view.loss:.2f} nats; "
            f"{verdict}.</p>"
            "<table><thead><tr><th>prediction</th><th>probability</th><th></th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>")


def matrix_heat_map(rows: list[list[float]], title: str, cell: int = 8) -> str:
    """<svg>: one cell per value, red above zero and blue below, opacity |v| / max |v| of the tensor."""
    n_rows, n_cols = len(rows), len(rows[0])
    scale = max((abs(v) for row in rows for v in row), default=0.0) or 1.0
    width, height = n_cols * cell, n_rows * cell + 16
    parts = [f'<svg class="tg-matrix" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" data-cells="{n_rows * n_cols}">',
             f'<text x="0" y="11" font-size="11">{escape(title)}: max |v| = {scale:.3g}</text>']
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            if v:
                parts.append(f'<rect x="{c * cell}" y="{16 + r * cell}" width="{cell}" height="{cell}" '
                             f'fill="{POSITIVE if v > 0 else NEGATIVE}" fill-opacity="{abs(v) / scale:.2f}"/>')
    parts.append("</svg>")
    return "".join(parts)
