"""What the sampling lesson shows, as HTML strings: the candidates table and the generated tokens."""

from __future__ import annotations

import math
from html import escape
from typing import Callable

from .sampling import Candidate, Generation, entropy


def candidates_table(rows: list[Candidate], label: Callable[[int], str], step: int) -> str:
    """<table>: each candidate's probability under the model and under the current settings."""
    body = []
    for c in rows:
        cut = ' class="tg-cut"' if c.p_draw == 0.0 else ""
        body.append(f'<tr{cut} data-token="{c.token}"><td><code>{escape(label(c.token).replace(" ", "·"))}</code></td>'
                    f'<td class="tg-num">{100 * c.p_model:.1f} %</td><td class="tg-num">{100 * c.p_draw:.1f} %</td>'
                    f'<td><span class="tg-bar" style="width:{max(1, round(200 * c.p_draw))}px"></span></td></tr>')
    return (f'<table data-step="{step}"><thead><tr><th>next token</th><th>model (temperature 1)</th>'
            "<th>drawn with these settings</th><th></th></tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def spread_line(probs: list[float]) -> str:
    """How spread out the drawing distribution is: its entropy and the equivalent number of choices."""
    h = entropy(probs)
    return f"Entropy of the draw: {h:.2f} nats, as uncertain as a choice among {math.exp(h):.1f} equal options."


def generated_html(gen: Generation, label: Callable[[int], str]) -> str:
    """The prompt's tokens, then each generated token; how the generation ended, if it did."""
    chips = []
    for i, token in enumerate(gen.ids):
        cls = "tg-prompt" if i < gen.n_prompt else "tg-new"
        chips.append(f'<span class="tg-tok tg-chip {cls}">{escape(label(token).replace(" ", "·"))}</span>')
    end = ""
    if gen.stop_token is not None:
        p = gen.chosen[-1][1]
        end = (f' <span class="tg-tok tg-chip tg-new">{escape(label(gen.stop_token))}</span> '
               f"drawn with {100 * p:.1f} %: the name ends.")
    elif gen.stopped:
        end = " (the length limit: stopped)"
    return "".join(chips) + end
