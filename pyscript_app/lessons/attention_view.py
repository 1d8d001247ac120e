"""What the attention lesson shows: one SVG heat map per head (queries down, keys across)."""

from __future__ import annotations

from html import escape

from .attention import AttentionView, bos_share, look_back
from .tinyforward import Matrix

CELL = 22  # px per (query, key) cell
LABEL = 46  # px for the token labels left of and above the grid


def heat_map(probs: Matrix, labels: list[str], title: str) -> str:
    """<svg>: cell (t, s) filled with opacity probs[t][s]; masked cells (s > t) hatched light grey."""
    T = len(labels)
    size_x, size_y = LABEL + T * CELL, LABEL + T * CELL + 18
    parts = [f'<svg class="tg-heat" xmlns="http://www.w3.org/2000/svg" width="{size_x}" height="{size_y}" '
             f'viewBox="0 0 {size_x} {size_y}" data-cells="{T * T}">',
             f'<text x="{LABEL}" y="12" class="tg-heat-title">{escape(title)}</text>']
    top = 18 + LABEL
    for i, label in enumerate(labels):
        shown = escape(label.replace(" ", "·"))
        parts.append(f'<text x="{LABEL - 4}" y="{top + i * CELL + CELL * 0.7:.0f}" text-anchor="end">{shown}</text>')
        x = LABEL + i * CELL + CELL * 0.65
        parts.append(f'<text x="{x:.0f}" y="{top - 4}" transform="rotate(-60 {x:.0f} {top - 4})">{shown}</text>')
    for t, row in enumerate(probs):
        for s, p in enumerate(row):
            x, y = LABEL + s * CELL, top + t * CELL
            if s > t:
                parts.append(f'<rect x="{x}" y="{y}" width="{CELL - 1}" height="{CELL - 1}" class="tg-masked"/>')
                continue
            tip = f"query {t} {labels[t]!r} attends to key {s} {labels[s]!r}: {p:.3f}"
            parts.append(f'<rect x="{x}" y="{y}" width="{CELL - 1}" height="{CELL - 1}" class="tg-cell" '
                         f'fill-opacity="{max(p, 0.02):.3f}"><title>{escape(tip)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def heat_maps(view: AttentionView, layer: int, bos: int) -> str:
    """Every head of one layer, side by side, each with its look-back distance and BOS share."""
    figures = []
    for h, probs in enumerate(view.maps[layer]):
        caption = (f"looks back {look_back(probs):.1f} tokens on average; "
                   f"{100 * bos_share(probs, view.ids, bos):.0f} % of its weight on ⟨BOS⟩")
        figures.append(f'<figure class="tg-head" data-head="{h}">{heat_map(probs, view.labels, f"head {h}")}'
                       f"<figcaption>{escape(caption)}</figcaption></figure>")
    return f'<div class="tg-heads" data-layer="{layer}">' + "".join(figures) + "</div>"


def next_tokens_line(view: AttentionView) -> str:
    shown = ", ".join(f"<code>{escape(label)}</code> {100 * p:.1f} %" for label, p in view.next_tokens)
    return f"After <code>{escape(view.labels[-1])}</code> the model expects: {shown}"
