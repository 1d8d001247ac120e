"""The sampling lesson's Python (PyScript worker). Logic: lessons/sampling.py; HTML: sampling_view.py.

Boot fetches the model the site build trained (lessons/lesson_checkpoint.py MODEL_PATH) and starts a
generation from the prompt. The sliders re-draw the candidates of the next token at once (the
logits are kept); "Next token" draws one with sampler.choose; "Sample 10 names" generates whole
names at the current settings. Everything runs in pure Python (lessons/tinyforward.py).
"""

from __future__ import annotations

from html import escape

from pyscript_app.browser.jsutil import fetch_bytes
from pyscript_app.browser.lesson_dom import (by_testid, enable, float_value, int_value, on, set_html, set_text,
                                             site_url, start, status, value_of)
from pyscript_app.lessons.lesson_checkpoint import MODEL_PATH, open_lesson_model
from pyscript_app.lessons.sampling import Generation, draw_distribution, sample_names
from pyscript_app.lessons.sampling_view import candidates_table, generated_html, spread_line


class SamplingPage:
    def __init__(self) -> None:
        self.lesson = None
        self.gen: Generation | None = None

    async def boot(self) -> None:
        self.lesson = open_lesson_model(await fetch_bytes(site_url(MODEL_PATH)))
        cfg = self.lesson.cfg
        set_text("model-facts", f"nano (L={cfg.n_layer} C={cfg.n_embd} H={cfg.n_head} T={cfg.block_size} "
                                f"V={cfg.vocab_size}), {self.lesson.step} training steps, validation loss "
                                f"{self.lesson.meta.get('val_loss', float('nan')):.2f} nats per token")
        by_testid("top-k").max = cfg.vocab_size
        self.restart()
        on("temperature", "input", self.show)
        on("top-k", "input", self.show)
        on("gen-step", "click", self.step)
        on("gen-reset", "click", self.restart)
        on("prompt", "change", self.restart)
        on("sample-many", "click", self.sample_many)
        enable("temperature", "top-k", "gen-step", "gen-reset", "prompt", "seed", "sample-many")
        status("ready", "Ready: the model runs in this page's Python.")

    def settings(self) -> tuple[float, int]:
        return float_value("temperature", 0.0, 2.0, 0.8), int_value("top-k", 0, self.lesson.cfg.vocab_size, 0)

    def label(self, token: int) -> str:
        return self.lesson.token_label(token)

    def restart(self) -> None:
        self.gen = Generation(self.lesson, value_of("prompt").strip().lower(), int_value("seed", 0, 1 << 30, 0))
        self.show()

    def show(self) -> None:
        temperature, top_k = self.settings()
        greedy = " (greedy: always the most likely)" if temperature == 0 else ""
        set_text("temperature-label", f"{temperature:.2f}{greedy}")
        set_text("top-k-label", f"{top_k}" if top_k else "off (all tokens)")
        gen = self.gen
        set_html("generated", generated_html(gen, self.label))
        step = len(gen.chosen)
        if gen.stopped:
            set_html("candidates", "")
            set_text("spread", "Press “Start again” for a new one.")
        else:
            set_html("candidates", candidates_table(gen.candidates(temperature, top_k), self.label, step))
            set_text("spread", spread_line(list(draw_distribution(gen.logits(), temperature, top_k).values())))
        generated = by_testid("generated")
        generated.setAttribute("data-done", "true" if gen.stopped else "false")
        generated.setAttribute("data-step", str(step))  # last: the tests wait on it

    def step(self) -> None:
        temperature, top_k = self.settings()
        self.gen.advance(temperature, top_k)
        self.show()

    def sample_many(self) -> None:
        status("busy", "Sampling…")
        temperature, top_k = self.settings()
        names = sample_names(self.lesson, 10, temperature, top_k, int_value("seed", 0, 1 << 30, 0))
        set_html("samples", "".join(f"<li><code>{escape(n)}</code></li>" for n in names))
        status("ready", f"10 names at temperature {temperature:.2f}, top-k {top_k or 'off'}.")


start(SamplingPage().boot)
