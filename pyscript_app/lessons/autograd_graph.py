"""Draw an autograd graph as SVG text: each Value a box (name, data, grad), each operation a circle.

Layout: a Value's column is its depth (inputs at 0, each operation one column right of its
deepest parent, constants just left of their use); rows fill top to bottom in topological
order. Edges run from a parent's box to
the circle of the operation that used it, then to the result's box, like micrograd's draw_dot.
Pure string building (no graphviz, nothing fetched); every text goes through html.escape.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from .autograd import Value, topological_order

MAX_NODES = 60  # bigger graphs are summarised instead of drawn (they stop being readable)
BOX_W, BOX_H = 132, 50
OP_R = 15  # radius of an operation's circle
COL_W = BOX_W + 4 * OP_R + 28  # box, the gap holding the op circle, and some air
ROW_H = BOX_H + 18
PAD = 12


@dataclass
class Placed:
    value: Value
    col: int
    row: int

    @property
    def x(self) -> int:  # left edge of the box
        return PAD + self.col * COL_W + (3 * OP_R if self.col else 0)

    @property
    def y(self) -> int:  # top edge of the box
        return PAD + self.row * ROW_H


def layout(out: Value, names: dict[int, str] | None = None) -> list[Placed]:
    """Every Value of the graph with its (column, row); the order is topological.

    Inputs (leaves with a label or a name in `names`) sit in column 0; a constant (the 2 in
    `a * 2`) sits just left of the operation that uses it, so its edge stays short."""
    names = names or {}
    order = list(topological_order(out))
    col: dict[int, int] = {}
    for v in order:
        col[id(v)] = 1 + max(col[id(p)] for p in v.parents) if v.parents else 0
    for v in order:
        for p in v.parents:
            if not p.parents and not p.label and id(p) not in names:
                col[id(p)] = max(col[id(p)], col[id(v)] - 1)
    rows: dict[int, int] = {}
    placed = []
    for v in order:
        c = col[id(v)]
        placed.append(Placed(v, c, rows.get(c, 0)))
        rows[c] = rows.get(c, 0) + 1
    return placed


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _box(p: Placed, name: str, kind: str) -> str:
    v, x, y = p.value, p.x, p.y
    return (f'<g class="tg-node {kind}"><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
            f'<text x="{x + 8}" y="{y + 16}" class="tg-name">{escape(name)}</text>'
            f'<text x="{x + 8}" y="{y + 31}">data {escape(_fmt(v.data))}</text>'
            f'<text x="{x + 8}" y="{y + 45}" class="tg-grad">grad {escape(_fmt(v.grad))}</text></g>')


def _op(p: Placed, parents: list[Placed]) -> str:
    cx, cy = p.x - 2 * OP_R, p.y + BOX_H // 2
    edges = []
    for q in parents:
        sx, sy = q.x + BOX_W, q.y + BOX_H // 2
        mid = (sx + cx - OP_R) // 2
        edges.append(f'<path class="tg-edge" d="M{sx},{sy} C{mid},{sy} {mid},{cy} {cx - OP_R},{cy}"/>')
    edges.append(f'<path class="tg-edge" d="M{cx + OP_R},{cy} L{p.x},{cy}"/>')
    return ("".join(edges) + f'<g class="tg-op"><circle cx="{cx}" cy="{cy}" r="{OP_R}"/>'
            f'<text x="{cx}" y="{cy + 4}" text-anchor="middle">{escape(p.value.op)}</text></g>')


def graph_svg(out: Value, names: dict[int, str] | None = None) -> str:
    """The graph of `out` as an <svg> element; names maps id(Value) -> a name to show (else its label)."""
    names = names or {}
    placed = layout(out, names)
    if len(placed) > MAX_NODES:
        return (f'<p class="tg-graph-note">This graph has {len(placed)} values, more than the '
                f"{MAX_NODES} this page draws; the gradients and the check below still cover it.</p>")
    where = {id(p.value): p for p in placed}
    parts = []
    for p in placed:
        if p.value.parents:
            parts.append(_op(p, [where[id(q)] for q in p.value.parents]))
    for p in placed:
        v = p.value
        name = names.get(id(v)) or v.label
        if v is out:
            kind = "tg-output"
        elif v.parents:
            kind, name = "tg-inner", name or v.op
        else:
            kind, name = ("tg-input", name) if name else ("tg-constant", "constant")
        parts.append(_box(p, name, kind))
    width = max(p.x for p in placed) + BOX_W + PAD
    height = max(p.y for p in placed) + BOX_H + PAD
    return (f'<svg class="tg-graph" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="computation graph with {len(placed)} values">'
            + "".join(parts) + "</svg>")
