"""The attention lesson's Python (PyScript worker). Logic: lessons/attention.py; HTML: attention_view.py.

Boot fetches the model the site build trained (lessons/lesson_checkpoint.py MODEL_PATH) and draws
the attention of every head for the names in the text box; every edit redraws them. Everything runs
in pure Python (lessons/tinyforward.py): no WebGPU needed.
"""

from __future__ import annotations

import math

from pyscript_app.browser.jsutil import fetch_bytes
from pyscript_app.browser.lesson_dom import (by_testid, enable, int_value, on, set_html, set_text, site_url, start,
                                             status, value_of)
from pyscript_app.lessons.attention import attend
from pyscript_app.lessons.attention_view import heat_maps, next_tokens_line
from pyscript_app.lessons.lesson_checkpoint import MODEL_PATH, open_lesson_model


class AttentionPage:
    def __init__(self) -> None:
        self.lesson = None

    async def boot(self) -> None:
        self.lesson = open_lesson_model(await fetch_bytes(site_url(MODEL_PATH)))
        cfg, meta = self.lesson.cfg, self.lesson.meta
        set_text("model-facts", f"L={cfg.n_layer} C={cfg.n_embd} H={cfg.n_head} (D={cfg.head_dim}) "
                                f"T={cfg.block_size} V={cfg.vocab_size}, {cfg.param_count:,} parameters, "
                                f"{self.lesson.step} steps; validation loss {meta.get('val_loss', float('nan')):.2f} "
                                f"nats per token (a uniform guess: ln {cfg.vocab_size} = {math.log(cfg.vocab_size):.2f})")
        layer = by_testid("layer")
        layer.max = cfg.n_layer - 1
        self.draw()
        on("attention-text", "input", self.draw)
        on("layer", "input", self.draw)
        enable("attention-text", "layer")
        status("ready", "Ready: the model runs in this page's Python.")

    def draw(self) -> None:
        lesson = self.lesson
        layer = int_value("layer", 0, lesson.cfg.n_layer - 1, 0)
        view = attend(lesson, value_of("attention-text"))
        set_text("layer-label", f"layer {layer} of {lesson.cfg.n_layer}")
        set_html("next-tokens", next_tokens_line(view))
        maps = by_testid("attention-maps")
        maps.innerHTML = heat_maps(view, layer, lesson.tokenizer.bos)
        maps.setAttribute("data-tokens", str(len(view.ids)))  # last: the tests wait on it
        maps.setAttribute("data-text", value_of("attention-text"))


start(AttentionPage().boot)
