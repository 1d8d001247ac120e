"""Every lesson page in headless Chromium: it loads offline (every request to the local server) with no
console errors, its Python starts in a PyScript worker, and its main interactive action runs once and
shows its result: the tokens appear, the gradient check passes, the matmul check passes with a
GFLOP/s figure, the federated example computes. One built site and one browser for the module."""

from __future__ import annotations

import re

import pytest

from _browser import browser, built_site, open_page, playwright_instance, site_server  # noqa: F401
from _require import require
from _lessons import STATUS, open_lesson, tid
from pyscript_app.lessons.gpu_kernels import timing_case

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]

LESSONS = ("tokens", "autograd", "model", "attention", "training", "sampling", "gpu-kernels", "federated")


def test_home_page_lists_the_lessons_in_order(browser, site_server):
    rec = open_page(browser, site_server.url(""))
    try:
        page = rec.page
        links = page.eval_on_selector_all("article a[href*='lessons/']", "as => as.map(a => a.getAttribute('href'))")
        order = [next(n for n in LESSONS if f"lessons/{n}/" in href) for href in links]
        assert list(dict.fromkeys(order)) == list(LESSONS)
        nav = page.eval_on_selector_all("nav.md-nav--primary a[href*='lessons/']",
                                        "as => as.map(a => a.textContent.trim())")
        assert nav[:8] == ["Tokens", "Autograd", "The model", "Attention", "Training", "Sampling", "GPU kernels",
                           "Federated training"]
        rec.assert_clean(site_server.origin)
    finally:
        rec.close()


def test_every_lesson_starts_with_what_the_reader_will_be_able_to_do(built_site):
    for name in LESSONS:
        html = (built_site / "lessons" / name / "index.html").read_text(encoding="utf-8")
        article = html[html.index("<article"):]
        first_paragraph = re.search(r"<p>(.*?)</p>", article, re.S).group(1)
        assert first_paragraph.startswith("After this lesson you will be able to"), name


def test_tokens_appear_and_training_learns_merges(browser, site_server):
    rec = open_lesson(browser, site_server, "tokens")
    try:
        page = rec.page
        tokens = int(page.get_attribute(tid("token-view"), "data-tokens"))
        text = page.input_value(tid("user-text"))
        assert 0 < tokens < len(text.encode("utf-8"))  # BPE compresses its own kind of text
        assert page.locator(f"{tid('token-view')} .tg-tok").count() == tokens
        assert page.locator(f"{tid('char-view')} .tg-tok").count() == len(text)

        page.fill(tid("user-text"), "hello hello")
        page.wait_for_function(f"document.querySelector('{tid('char-view')}').children.length === 11")
        page.fill(tid("train-merges"), "40")
        page.click(tid("train-button"))
        page.wait_for_selector(f'{tid("train-progress")}[data-merges="40"]')
        assert page.locator(f"{tid('merges')} .tg-merge").count() == 40
        assert page.get_attribute(tid("merges-used"), "max") == "40"
        assert page.locator(f"{tid('compression')} tr[data-merges]").count() >= 2
        rec.assert_clean(site_server.origin)
    finally:
        rec.close()


def test_autograd_runs_edited_code_and_its_gradient_check_passes(browser, site_server):
    rec = open_lesson(browser, site_server, "autograd")
    try:
        page = rec.page
        assert page.get_attribute(tid("gradcheck-verdict"), "data-passed") == "true"  # the example, run on boot
        code = 'p = Value(0.5, label="p")\nq = Value(-1.5, label="q")\nout = (p * q).exp() + p.tanh() / q\n'
        page.fill(tid("code"), code)
        page.click(tid("run-button"))
        verdict = f"document.querySelector('{tid('gradcheck-verdict')}').textContent"
        page.wait_for_function(f"{verdict}.includes('(2 inputs')")
        assert page.text_content(tid("gradcheck-verdict")).startswith("gradient check: passed")
        assert page.locator(f"{tid('graph')} svg .tg-node").count() >= 5
        rec.assert_clean(site_server.origin)
    finally:
        rec.close()


def test_gpu_kernels_matmul_passes_and_is_timed(browser, site_server):
    rec = open_lesson(browser, site_server, "gpu-kernels")
    try:
        page = rec.page
        assert re.match(r"\d+ × \d+ outputs per workgroup", page.text_content(tid("matmul-tiles")))
        require(page.get_attribute(STATUS, "data-state") != "no-webgpu",
                f"no WebGPU adapter in this Chromium: {page.text_content(STATUS)}")
        page.select_option(tid("matmul-size"), "64")  # SwiftShader is slow: a tiny shape
        page.wait_for_selector(f'{tid("tiling-stats")} table[data-shape="64x64x64"]')
        page.click(tid("measure-button"))
        page.wait_for_selector(f'{tid("matmul-timings")}[data-size="64"]', timeout=120_000)
        summary = page.text_content(tid("matmul-summary"))
        n_cases = page.locator(f"{tid('matmul-cases')} tr").count()
        assert n_cases > 0 and summary == f"{n_cases} passed, 0 failed"
        rates = page.eval_on_selector_all(f"{tid('matmul-timings')} tr", "rows => rows.map(r => r.innerText)")
        kernels = [s["kernel"] for s in timing_case(64, 64, 64)["steps"]]  # forward, then backward
        assert len(rates) == len(kernels) and all(re.search(r"[\d.]+(e[-+]\d+)? GFLOP/s", r) for r in rates), rates
        rec.assert_clean(site_server.origin)
    finally:
        rec.close()


def test_federated_example_computes(browser, site_server):
    rec = open_lesson(browser, site_server, "federated")
    try:
        page = rec.page
        assert page.locator(f"{tid('traffic')} tr[data-preset]").count() == 5
        page.select_option(tid("aggregator"), "fedavg")
        page.wait_for_function(f"document.querySelector('{tid('outer-momentum')}').value === '0.0'")
        page.fill(tid("round-count"), "4")
        page.click(tid("compute-button"))
        final = f"document.querySelector('{tid('final')}').textContent"
        page.wait_for_function(f"{final}.startsWith('After 4 rounds of fedavg')")
        assert page.locator(f"{tid('rounds-table')} tr[data-round]").count() == 4
        assert float(page.get_attribute(tid("final"), "data-distance")) < 0.5
        rec.assert_clean(site_server.origin)
    finally:
        rec.close()
