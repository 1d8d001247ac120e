"""The model, attention, training and sampling lessons in headless Chromium: each loads offline (every
request to the local server) with no console errors, its Python starts in a PyScript worker, and its
main action runs once and shows its result: parity badges pass, the attention heat maps draw, the
training stepper advances and the loss falls below ln(V), the generation stepper advances.
One built site and one browser for the module (same fixtures as test_browser_lessons.py)."""

from __future__ import annotations

import math

import pytest

from _browser import browser, built_site, open_page, playwright_instance, site_server  # noqa: F401
from _require import require
from _lessons import STATUS, open_lesson, tid
from pyscript_app.config import ModelConfig, preset

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]



def fill_input(page, testid: str, value: str) -> None:
    """Set an input's value and fire `input` (range inputs cannot be typed into)."""
    page.eval_on_selector(tid(testid), "(e, v) => { e.value = v; e.dispatchEvent(new Event('input')); }", value)


def test_model_counts_parameters_and_its_parity_badges_pass(browser, site_server):
    rec = open_lesson(browser, site_server, "model")
    try:
        page = rec.page
        assert page.get_attribute(tid("params-table"), "data-total") == str(preset("tiny").param_count)
        assert page.locator(f"{tid('presets-table')} tr[data-preset]").count() == 5
        page.select_option(tid("model-choice"), "custom")
        fill_input(page, "custom-C", "96")
        page.wait_for_selector(f'{tid("params-table")}[data-total="{ModelConfig(2, 96, 4, 32).param_count}"]')
        fill_input(page, "custom-H", "5")
        page.wait_for_function(f"document.querySelector('{tid('params-error')}').textContent.includes('divisible')")
        require(page.get_attribute(STATUS, "data-state") != "no-webgpu",
                f"no WebGPU adapter in this Chromium: {page.text_content(STATUS)}")
        for op in ("embedding", "rmsnorm"):  # the cheap families (matmul's tile variants compile for long)
            page.click(tid(f"check-{op}"))
            page.wait_for_selector(f'{tid("parity-" + op)}:is([data-state="pass"], [data-state="fail"])',
                                   timeout=120_000)
            badge = page.text_content(tid(f"parity-{op}"))
            assert badge.startswith("PASS: WGSL matches the reference"), badge
        rec.assert_clean(site_server.origin)
    finally:
        rec.close()


def test_attention_heat_maps_draw_for_typed_names(browser, site_server):
    rec = open_lesson(browser, site_server, "attention")
    try:
        page = rec.page
        heads = preset("nano").n_head
        maps = tid("attention-maps")
        T = int(page.get_attribute(maps, "data-tokens"))
        assert T >= 6  # three names, each after a BOS
        assert page.locator(f"{maps} svg.tg-heat").count() == heads
        assert page.locator(f"{maps} rect.tg-cell").count() == heads * T * (T + 1) // 2
        page.fill(tid("attention-text"), "mia noah")
        page.wait_for_selector(f'{maps}[data-text="mia noah"]')
        T2 = int(page.get_attribute(maps, "data-tokens"))
        assert 4 <= T2 < T and page.locator(f"{maps} rect.tg-cell").count() == heads * T2 * (T2 + 1) // 2
        assert "the model expects" in page.text_content(tid("next-tokens"))
        facts = page.text_content(tid("model-facts"))
        assert f"{preset('nano').param_count:,} parameters" in facts
        rec.assert_clean(site_server.origin)
    finally:
        rec.close()


def test_training_steps_and_the_loss_falls_below_ln_v(browser, site_server):
    rec = open_lesson(browser, site_server, "training")
    try:
        page = rec.page
        progress = tid("train-progress")
        require(page.get_attribute(STATUS, "data-state") != "no-webgpu",
                f"no WebGPU adapter in this Chromium: {page.text_content(STATUS)}")
        fill_input(page, "total-steps", "30")
        page.wait_for_selector(f'{tid("lr-chart")} svg[data-steps="30"]')
        page.wait_for_function(f"document.querySelector('{progress}').textContent.startsWith('step 0 of 30')")
        before = page.get_attribute(f"{tid('position-view')} [data-position]", "data-loss")
        page.click(tid("step-button"))
        page.wait_for_selector(f'{progress}[data-step="1"]', timeout=120_000)
        assert page.get_attribute(f"{tid('position-view')} [data-position]", "data-loss") != before  # the next batch
        assert page.locator(f"{tid('position-view')} tbody tr").count() == 5  # the top predictions
        assert page.locator(f"{tid('tensor-maps')} svg.tg-matrix").count() == 2  # weights and gradients
        page.click(tid("train-button"))
        page.wait_for_selector(f'{progress}[data-step="30"]', timeout=120_000)
        page.wait_for_function(f"document.querySelector('{progress}').textContent.includes('validation loss')",
                               timeout=60_000)
        loss = float(page.get_attribute(progress, "data-loss"))
        assert loss < math.log(preset("nano").vocab_size) - 0.5, page.text_content(progress)
        assert page.get_attribute(tid("tensor-maps"), "data-step") == "30"
        rec.assert_clean(site_server.origin)
    finally:
        rec.close()


def test_sampling_stepper_advances_and_samples_names(browser, site_server):
    rec = open_lesson(browser, site_server, "sampling")
    try:
        page = rec.page
        generated = tid("generated")
        assert page.locator(f"{tid('candidates')} tbody tr").count() == 8
        fill_input(page, "top-k", "3")
        page.wait_for_function(  # 8 candidates shown, top-k keeps 3
            f"document.querySelectorAll('{tid('candidates')} tbody tr.tg-cut').length === 5")
        assert page.text_content(tid("top-k-label")) == "3"
        page.click(tid("gen-step"))
        page.wait_for_selector(f'{generated}[data-step="1"]')
        assert page.locator(f"{generated} .tg-new").count() == 1
        page.click(tid("sample-many"))
        page.wait_for_selector(f"{tid('samples')} li")
        assert page.locator(f"{tid('samples')} li").count() == 10
        rec.assert_clean(site_server.origin)
    finally:
        rec.close()
