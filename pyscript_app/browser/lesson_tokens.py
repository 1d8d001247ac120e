"""The tokens lesson's Python (PyScript worker). Logic: lessons/tokens.py; HTML: lessons/tokens_view.py.

Boot trains a tokenizer on the page's training text and tokenizes the reader's text. "Train"
retrains (progress from bpe.learn_merges' callback); typing re-tokenizes and re-measures the
compression; the slider applies only the first k merges, to watch the tokens grow merge by merge.
"""

from __future__ import annotations

import time

from pyscript_app.browser.lesson_dom import (by_testid, enable, int_value, on, set_html, set_text, start,
                                             status, value_of)
from pyscript_app.lessons.tokens import MAX_MERGES, counts, train_tokenizer, with_first_merges
from pyscript_app.lessons.tokens_view import (char_spans, compression_column, compression_table, counts_line,
                                              merges_list, token_spans)

DEFAULT_MERGES = 200


class TokensPage:
    def __init__(self) -> None:
        self.tok = None
        self.train_compression: dict[int, float] = {}  # of the text trained on, kept across edits

    async def boot(self) -> None:
        self.train()
        on("train-button", "click", self.train)
        on("user-text", "input", self.text_changed)
        on("merges-used", "input", self.show_text)
        enable("train-button", "user-text", "merges-used")
        status("ready", "Ready: Python is running in this page.")

    def train(self) -> None:
        status("busy", "Training…")
        text = value_of("train-text")
        n_merges = int_value("train-merges", 0, MAX_MERGES, DEFAULT_MERGES)

        def progress(done: int, total: int) -> None:
            set_text("train-progress", f"{done} / {total} merges learned…")

        t0 = time.perf_counter()
        self.tok = train_tokenizer(text, n_merges, progress)
        seconds = time.perf_counter() - t0
        tok = self.tok
        self.train_compression = compression_column(tok, text)
        set_text("train-progress", f"{tok.n_merges} merges learned in {seconds:.2f} s from "
                                   f"{len(text.encode('utf-8')):,} bytes of text; vocabulary {tok.vocab_size}.")
        set_html("merges", merges_list(tok))
        slider = by_testid("merges-used")
        slider.max = tok.n_merges
        slider.value = tok.n_merges
        self.text_changed()
        by_testid("train-progress").setAttribute("data-merges", str(tok.n_merges))  # last: tests wait on it
        status("ready", "Ready.")

    def text_changed(self) -> None:
        self.show_text()
        columns = {"training text": self.train_compression,
                   "your text": compression_column(self.tok, value_of("user-text"))}
        set_html("compression", compression_table(columns))

    def show_text(self) -> None:
        if self.tok is None:
            return
        text = value_of("user-text")
        k = int_value("merges-used", 0, self.tok.n_merges, self.tok.n_merges)
        partial = with_first_merges(self.tok, k)
        byte_level = with_first_merges(self.tok, 0)
        set_text("merges-used-label", f"{k} of {self.tok.n_merges}")
        c = counts(partial, text)
        set_html("char-view", char_spans(text))
        set_html("byte-view", token_spans(byte_level, text))
        set_html("token-view", token_spans(partial, text))
        set_html("token-counts", counts_line(c))
        view = by_testid("token-view")
        view.setAttribute("data-tokens", str(c["tokens"]))


start(TokensPage().boot)
