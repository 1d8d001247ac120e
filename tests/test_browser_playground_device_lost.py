"""The playground survives a lost GPU device: training stops with a "lost" status that says so, and
Resume continues from the last OPFS checkpoint on a new device.

The loss is real, not simulated in Python: the test makes the worker's own GPUDevice call
destroy() (WebGPU's way to lose a device on purpose; the browser resolves `device.lost` exactly as
for a driver reset or an unplugged GPU). It patches GPUDevice.prototype.createCommandEncoder in
every worker of the page so that the next command encoder the training loop asks for destroys its
device first, then restores the method: the page's code is unchanged and has no test hook."""

from __future__ import annotations

import math

import pytest

from _browser import browser, built_site, playwright_instance, site_server  # noqa: F401
from _playground import FINISHED, STATUS, fill, loss_log, open_playground, shown_step, wait_state

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

LN_V = math.log(1024)  # a fresh model's loss

DESTROY_DEVICE_AT_NEXT_ENCODER = """() => {
  if (typeof GPUDevice === "undefined") return false;
  const proto = GPUDevice.prototype, original = proto.createCommandEncoder;
  proto.createCommandEncoder = function (...args) {
    proto.createCommandEncoder = original;   // once: the next device is left alone
    this.destroy();
    return original.apply(this, args);
  };
  return true;
}"""


def step_at_least(page, step: int, timeout_ms: int = 180_000) -> None:
    page.wait_for_function(
        f"Number(document.querySelector('[data-testid=step-count]').dataset.step) >= {step}", timeout=timeout_ms)


def test_a_lost_device_stops_training_and_resume_continues_from_the_last_checkpoint(browser, site_server):
    rec = open_playground(browser, site_server, init_script=None)
    page = rec.page
    try:
        fill(page, dataset="names", model="nano", steps=200, batch=4, checkpoint_every=10, samples=0)
        page.click('[data-testid="train-button"]')
        step_at_least(page, 12)  # a checkpoint (step 10 at least) is in OPFS
        patched = [w.evaluate(DESTROY_DEVICE_AT_NEXT_ENCODER) for w in page.workers]
        assert any(patched), "no worker of the page exposes WebGPU"

        assert wait_state(page, FINISHED + ("lost",)) == "lost", page.text_content(STATUS)
        assert "device was lost" in page.text_content(STATUS)
        lost_at = shown_step(page)
        trained_loss = float(page.get_attribute('[data-testid="train-loss"]', "data-value"))  # last shown
        assert trained_loss < LN_V - 0.3
        resume = page.locator('[data-testid="resume-button"]')
        resume.wait_for(state="visible", timeout=30_000)  # the page looks up the store after the loss
        assert page.is_enabled('[data-testid="train-button"]')
        saved = int(resume.get_attribute("data-step"))
        assert 10 <= saved <= lost_at and saved % 10 == 0, (saved, lost_at)

        resume.click()  # a new device (the lost one cannot be used again), the checkpoint's weights
        step_at_least(page, saved + 5)
        page.click('[data-testid="stop-button"]')
        assert wait_state(page, FINISHED) == "stopped", page.text_content(STATUS)
        log = loss_log(page)
        assert log["start_step"] == saved and len(log["losses"]) == shown_step(page) - saved
        # it continued the trained model (the loss near where it was), not a fresh one (ln V = 6.93)
        assert abs(log["losses"][0] - trained_loss) < 0.5 and log["losses"][0] < LN_V - 0.3
        rec.assert_clean(site_server.origin)
    finally:
        rec.close()
