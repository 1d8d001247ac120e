"""pyscript_app/lessons/attention_view.py: heat maps per head, the masked triangle, captions."""

from __future__ import annotations

import re

from pyscript_app.lessons.attention import AttentionView
from pyscript_app.lessons.attention_view import heat_map, heat_maps, next_tokens_line


def view() -> AttentionView:
    probs_a = [[1.0, 0.0, 0.0], [0.25, 0.75, 0.0], [0.5, 0.25, 0.25]]
    probs_b = [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    return AttentionView([9, 4, 5], ["⟨BOS⟩", "em", "<ma>"], [[probs_a, probs_b]], [("a", 0.5), ("e", 0.25)])


def test_heat_map_draws_the_lower_triangle_with_opacity_and_masks_the_rest():
    v = view()
    svg = heat_map(v.maps[0][0], v.labels, "head 0")
    assert 'data-cells="9"' in svg
    assert svg.count('class="tg-cell"') == 6 and svg.count('class="tg-masked"') == 3
    assert re.search(r'fill-opacity="0\.750"><title>query 1 &#x27;em&#x27; attends to key 1 &#x27;em&#x27;: 0\.750', svg)
    assert "&lt;ma&gt;" in svg and "<ma>" not in svg


def test_heat_maps_caption_each_head():
    v = view()
    html = heat_maps(v, 0, bos=9)
    assert html.count("<figure") == 2 and 'data-layer="0"' in html
    assert "looks back 1.0 tokens on average; 100 % of its weight on ⟨BOS⟩" in html  # head 1: always key 0
    assert next_tokens_line(v) == ("After <code>&lt;ma&gt;</code> the model expects: <code>a</code> 50.0 %, "
                                   "<code>e</code> 25.0 %")
