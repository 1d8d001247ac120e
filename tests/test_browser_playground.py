"""The playground in headless Chromium with WebGPU (SwiftShader on CI machines): our Python in a
PyScript worker trains `nano` on names and the loss falls; samples appear; the downloaded
checkpoint loads in `tabgpt sample`; Stop stops; a reload resumes from the OPFS checkpoint at the
same step; bad input gets a message and changes nothing; every request stays on the local server;
no console errors. The main thread's longest task while training is measured (Long Tasks API)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest

from _browser import browser, built_site, launch_chromium, open_page, playwright_instance, site_server  # noqa: F401
from _playground import (FINISHED, STATUS, fill, long_tasks_since, loss_log, open_playground, page_marks,
                         shown_step, wait_ready, wait_state)
from _require import REPO_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

LN_V = math.log(1024)


def expect_user_error(page, words: str, before: dict) -> None:
    page.wait_for_function(
        f"document.querySelector('{STATUS}').dataset.state === 'error' && "
        f"document.querySelector('{STATUS}').textContent.includes({json.dumps(words)})", timeout=30_000)
    assert shown_step(page) == before["step"] and loss_log(page) == before["log"], "bad input changed the run"


def test_playground_trains_nano_on_names_and_the_loss_falls(browser, site_server, tmp_path):
    t0 = time.perf_counter()
    rec = open_playground(browser, site_server)
    page = rec.page
    try:
        assert page.evaluate("crossOriginIsolated") is True
        backend = page.text_content('[data-testid="backend"]')
        assert backend.startswith(("software adapter (CPU, slow)", "WebGPU:")), backend
        fill(page, dataset="names", model="nano", steps=50, batch=4, checkpoint_every=25, samples=3)
        clicked_ms = page.evaluate("performance.now()")
        page.click('[data-testid="train-button"]')
        assert wait_state(page, FINISHED) == "done", page.text_content(STATUS)
        wall_s = time.perf_counter() - t0
        done_ms = page.evaluate("performance.now()")

        log = loss_log(page)
        losses = log["losses"]
        assert shown_step(page) == 50 and log["start_step"] == 0 and len(losses) == 50
        assert all(math.isfinite(x) for x in losses)
        assert abs(losses[0] - LN_V) < 0.1  # a fresh model guesses uniformly
        first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
        assert last < first - 0.3, f"loss did not fall: {first:.3f} -> {last:.3f}"
        val = float(page.get_attribute('[data-testid="val-loss"]', "data-value"))
        assert val < LN_V - 0.3
        assert float(page.get_attribute('[data-testid="tokens-per-s"]', "data-value")) > 0
        assert float(page.get_attribute('[data-testid="ms-per-step"]', "data-value")) > 0
        share = page.locator('[data-testid="host-share"]')
        assert 0 <= float(share.get_attribute("data-value")) <= 1
        assert share.get_attribute("data-replay") == "javascript"  # browser/step_replay.js replays the steps
        assert page.locator('[data-testid="chart-train"]').count() == 1
        assert page.locator('[data-testid="samples"] li').count() == 3

        training_tasks = long_tasks_since(page, clicked_ms)
        longest = max(training_tasks, default=0.0)
        marks = page_marks(page)
        print(f"\n[playground] {backend}: page clock: Python {marks['python']:.1f} s, ready {marks['ready']:.1f} s, "
              f"Train clicked {clicked_ms / 1e3:.1f} s, first step done {marks['first-step']:.1f} s, run done "
              f"{done_ms / 1e3:.1f} s; {wall_s:.1f} s after goto; loss {first:.3f} -> {last:.3f}; "
              f"{len(training_tasks)} long tasks while training, longest {longest:.0f} ms; timing {log['timing']}")
        assert longest < 1000, f"the main thread froze for {longest:.0f} ms"

        # the downloaded checkpoint is the CLI's format: `tabgpt sample` draws from it
        with page.expect_download() as download:
            page.click('[data-testid="download-checkpoint"]')
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        assert path.name == "tabgpt-names-nano.tgpt"
        out = subprocess.run([sys.executable, "-m", "pyscript_app.cli", "sample", "--checkpoint", str(path),
                              "-n", "3", "--max-tokens", "8"],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert len(out.stdout.splitlines()) >= 3

        _bad_input_changes_nothing(page, tmp_path)

        # and the checkpoint loads back into the page, which samples from it
        fill(page, steps=50, context="", dataset="names")
        page.set_input_files('[data-testid="checkpoint-file"]', str(path))
        page.wait_for_function(f"document.querySelector('{STATUS}').textContent.includes({json.dumps(path.name)})",
                               timeout=60_000)
        assert page.get_attribute(STATUS, "data-state") == "loaded", page.text_content(STATUS)
        assert "step 50" in page.text_content(STATUS)
        page.click('[data-testid="sample-button"]')
        assert wait_state(page, ("sampled", "error"), 120_000) == "sampled", page.text_content(STATUS)
        rec.assert_clean(site_server.origin)
    finally:
        rec.close()


def test_steps_replayed_in_javascript_give_the_bits_of_the_python_replay(browser, site_server):
    """The same run twice in one page: every step (and every sampled token's decode step) replayed by
    browser/step_replay.js, then by Python through the FFI (?replay=python): the same losses, bit for
    bit, and the same samples."""
    rec = open_playground(browser, site_server, init_script=None)
    page = rec.page
    runs = {}
    try:
        for replay in ("javascript", "python"):
            if replay == "python":
                page.evaluate("history.replaceState(null, '', '?replay=python')")
            fill(page, dataset="names", model="nano", steps=6, batch=4, checkpoint_every=6, samples=1)
            page.evaluate(f"document.querySelector('{STATUS}').dataset.state = 'clicked'")  # not the last run's
            page.click('[data-testid="train-button"]')
            assert wait_state(page, FINISHED) == "done", page.text_content(STATUS)
            assert page.get_attribute('[data-testid="host-share"]', "data-replay") == replay
            runs[replay] = (loss_log(page)["losses"], page.text_content('[data-testid="samples"]'))
        rec.assert_clean(site_server.origin)
    finally:
        rec.close()
    assert len(runs["javascript"][0]) == 6
    assert runs["javascript"] == runs["python"]


def _bad_input_changes_nothing(page, tmp_path) -> None:
    before = {"step": shown_step(page), "log": loss_log(page)}
    train = '[data-testid="train-button"]'
    fill(page, steps="ten")
    page.click(train)
    expect_user_error(page, "steps must be a whole number", before)
    fill(page, steps=50, context=17)
    page.click(train)
    expect_user_error(page, "over the nano model's limit of 16", before)
    fill(page, context="", dataset="custom", text="")
    page.click(train)
    expect_user_error(page, "empty", before)
    fill(page, text="x" * (2 * 2**20 + 10))
    page.click(train)
    expect_user_error(page, "MiB", before)

    binary = tmp_path / "photo.txt"
    binary.write_bytes(bytes(range(256)) * 8)
    page.set_input_files('[data-testid="text-file"]', str(binary))
    expect_user_error(page, "photo.txt", before)
    assert len(page.input_value('[data-testid="custom-text"]')) > 2 * 2**20  # the text area is untouched

    from pyscript_app.data.bpe import Tokenizer
    from pyscript_app.train.run_state import checkpoint_bytes, make_train_config

    cfg = make_train_config(dataset="names", model="tiny", steps=10, batch=2)
    n = cfg.model_cfg().param_count
    other = tmp_path / "tiny.tgpt"
    other.write_bytes(checkpoint_bytes(cfg, Tokenizer(vocab_size=1024), {"params": bytes(4 * n), "step": 3}))
    page.set_input_files('[data-testid="checkpoint-file"]', str(other))
    expect_user_error(page, "holds a tiny model", before)


def test_stop_stops_and_a_reload_resumes_from_the_opfs_checkpoint_at_the_same_step(browser, site_server):
    rec = open_playground(browser, site_server, init_script=None)
    page = rec.page
    try:
        # the page's defaults (names, nano, 200 steps): after a reload the form shows them again
        assert page.is_hidden('[data-testid="resume-button"]')
        fill(page, samples=0)
        page.click('[data-testid="train-button"]')
        page.wait_for_function("Number(document.querySelector('[data-testid=step-count]').dataset.step) >= 10",
                               timeout=180_000)
        page.click('[data-testid="stop-button"]')
        assert wait_state(page, FINISHED) == "stopped", page.text_content(STATUS)
        stopped_at = shown_step(page)
        assert 10 <= stopped_at < 200
        before = loss_log(page)["losses"]
        assert len(before) == stopped_at
        time.sleep(2)
        assert shown_step(page) == stopped_at and page.is_enabled('[data-testid="train-button"]')
        assert page.get_attribute('[data-testid="resume-button"]', "data-step") == str(stopped_at)

        page.reload()
        wait_ready(page)
        resume = page.locator('[data-testid="resume-button"]')
        assert resume.is_visible() and resume.get_attribute("data-step") == str(stopped_at)
        fill(page, samples=0)
        resume.click()
        page.wait_for_function(
            f"Number(document.querySelector('[data-testid=step-count]').dataset.step) > {stopped_at}",
            timeout=180_000)
        page.click('[data-testid="stop-button"]')
        assert wait_state(page, FINISHED) == "stopped", page.text_content(STATUS)
        log = loss_log(page)
        assert log["start_step"] == stopped_at and len(log["losses"]) == shown_step(page) - stopped_at
        # it continued the trained model, not a fresh one
        assert abs(log["losses"][0] - before[-1]) < 0.3 and log["losses"][0] < before[0] - 0.1
        rec.assert_clean(site_server.origin)
    finally:
        rec.close()


def test_without_webgpu_flag_the_page_takes_the_software_adapter_or_says_why_it_cannot_train(
        playwright_instance, site_server):
    """Chromium without --enable-unsafe-webgpu on a machine without a usable GPU: either the page gets
    the software (fallback) adapter and names it as the slow CPU path, or it says training needs WebGPU."""
    b = launch_chromium(playwright_instance, webgpu=False)
    try:
        rec = open_page(b, site_server.url("playground/"), timeout_ms=120_000)
        page = rec.page
        state = wait_state(page, ("ready", "no-webgpu", "error"), 120_000)
        backend = page.text_content('[data-testid="backend"]')
        if state == "no-webgpu":
            assert "Training needs WebGPU" in page.text_content(STATUS)
            assert backend.startswith("none") and page.is_disabled('[data-testid="train-button"]')
        else:
            assert state == "ready", page.text_content(STATUS)
            assert backend.startswith(("software adapter (CPU, slow)", "WebGPU:")), backend
        rec.assert_clean(site_server.origin)
    finally:
        b.close()
