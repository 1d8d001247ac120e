"""pyscript_app/lessons/autograd_graph.py: layout and SVG of a computation graph."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from pyscript_app.lessons.autograd import Value
from pyscript_app.lessons.autograd_graph import MAX_NODES, graph_svg, layout


def neuron():
    x, w = Value(2.0, label="x"), Value(-1.0, label="w")
    out = (x * w + 0.5).tanh()
    out.backward()
    return x, w, out


def test_inputs_in_column_zero_each_op_right_of_its_deepest_parent_constants_next_to_their_use():
    x, w, out = neuron()
    placed = {id(p.value): p for p in layout(out)}
    assert placed[id(x)].col == placed[id(w)].col == 0
    product = out.parents[0].parents[0]
    total = out.parents[0]
    constant = total.parents[1]
    assert (placed[id(product)].col, placed[id(total)].col, placed[id(out)].col) == (1, 2, 3)
    assert placed[id(constant)].col == 1  # just left of the + that uses it, not in column 0
    cells = [(p.col, p.row) for p in placed.values()]
    assert len(set(cells)) == len(cells)  # no two boxes on the same spot


def test_svg_is_well_formed_with_one_box_per_value_and_one_circle_per_operation():
    x, w, out = neuron()
    svg = graph_svg(out, {id(out): "out"})
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f".//{ns}rect")) == 6  # x, w, x*w, 0.5, +, tanh
    assert len(root.findall(f".//{ns}circle")) == 3  # *, +, tanh
    assert f"grad {x.grad:.4g}" in svg and f"data {out.data:.4g}" in svg
    assert 'class="tg-node tg-output"' in svg and 'class="tg-node tg-constant"' in svg
    assert int(root.get("width")) > 0 and int(root.get("height")) > 0


def test_names_and_labels_are_escaped():
    a = Value(1.0, label="<a&b>")
    out = a * 2
    svg = graph_svg(out)
    assert "<a&b>" not in svg and "&lt;a&amp;b&gt;" in svg
    ET.fromstring(svg)


def test_a_graph_too_big_to_read_is_summarised():
    y = Value(1.0, label="y")
    for _ in range(MAX_NODES):
        y = y * 1.5
    text = graph_svg(y)
    assert "<svg" not in text and re.search(rf"{2 * MAX_NODES + 1} values", text)
