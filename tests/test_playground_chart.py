"""pyscript_app/playground/chart.py: the loss chart's SVG."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from pyscript_app.playground.chart import HEIGHT, WIDTH, loss_chart_svg

NS = "{http://www.w3.org/2000/svg}"


def _points(svg: str, testid: str) -> list[tuple[float, float]]:
    root = ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))
    line = next(e for e in root.iter(f"{NS}polyline") if e.get("data-testid") == testid)
    return [tuple(map(float, p.split(","))) for p in line.get("points").split()]


def test_train_and_val_curves_fall_inside_the_plot_and_keep_their_order():
    train = [(10, 6.5), (20, 5.9), (30, 5.2)]
    val = [(15, 6.2), (30, 5.5)]
    svg = loss_chart_svg(train, val, total_steps=30, vocab_size=1024)
    pts = _points(svg, "chart-train")
    assert len(pts) == 3 and len(_points(svg, "chart-val")) == 2
    assert all(0 <= x <= WIDTH and 0 <= y <= HEIGHT for x, y in pts)
    assert pts[0][0] < pts[1][0] < pts[2][0]  # later steps to the right
    assert pts[0][1] < pts[1][1] < pts[2][1]  # lower loss further down
    assert f"ln(V) = {math.log(1024):.2f}" in svg


def test_an_empty_run_draws_only_the_baseline():
    svg = loss_chart_svg([], [], total_steps=0, vocab_size=300)
    assert "polyline" not in svg and f"{math.log(300):.2f}" in svg
    assert re.search(r'viewBox="0 0 \d+ \d+"', svg)
