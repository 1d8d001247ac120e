"""Parity across hosts: the same seed and steps give the same losses in the browser (our Python in
Pyodide on Chromium's WebGPU) and natively (the same Python on wgpu-native), step by step.

Both hosts run the very same code path: playground/settings.py builds the TrainConfig from the same
form values, playground/session.py runs the Trainer and logs every step's loss, on the same token
files (the site's py/data/). Only the executor underneath differs."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from _browser import browser, built_site, playwright_instance, site_server  # noqa: F401
from _require import module_available, require
from _playground import FINISHED, fill, loss_log, open_playground, wait_state

pytestmark = [pytest.mark.browser, pytest.mark.gpu, pytest.mark.timeout(300)]

FORM = {"dataset": "names", "model": "nano", "steps": 10, "batch": 4, "seed": 1337, "lr": "0.003",
        "checkpoint_every": 50, "samples": 0}
RTOL = 1e-4


def native_losses(site_dir) -> tuple[list[float], str]:
    """Every step's loss of the same run on the native host (wgpu-native), from the site's data files."""
    from pyscript_app.data.bpe import Tokenizer
    from pyscript_app.gpu.executor import GpuUnavailable
    from pyscript_app.gpu.native import open_device
    from pyscript_app.gpu.trainer_backend import GpuBackend
    from pyscript_app.playground.session import TrainingSession
    from pyscript_app.playground.settings import parse_settings
    from pyscript_app.playground.store import CheckpointStore, MemoryFiles
    from pyscript_app.playground.textdata import registry_data
    from pyscript_app.data.tokenfile import read_tokens

    require(module_available("wgpu"), "wgpu-py (wgpu-native) is not installed")
    try:
        ex = open_device("wgpu-native")
    except GpuUnavailable as e:
        require(False, f"no wgpu-native adapter: {e}")
    data_dir = site_dir / "py" / "data"
    tok = Tokenizer.from_json((data_dir / "names.tokenizer.json").read_bytes())
    data = registry_data("names", tok, read_tokens(data_dir / "names.train.bin", tok),
                         read_tokens(data_dir / "names.val.bin", tok))
    settings = parse_settings({k: str(v) for k, v in FORM.items()})
    cfg = settings.train_config()
    session = TrainingSession(settings, data, GpuBackend(cfg.model_cfg(), cfg, ex),
                              CheckpointStore(MemoryFiles()), settings.run_key(data.data_id))
    # its own thread: Playwright's sync API keeps an event loop running in this one
    with ThreadPoolExecutor(1) as pool:
        progress = pool.submit(asyncio.run, session.run(lambda event, progress: None)).result()
    return progress.step_losses, f"{ex.engine} {ex.adapter_info.get('device')}"


def test_browser_and_native_hosts_give_the_same_losses(browser, site_server, built_site):
    rec = open_playground(browser, site_server, init_script=None)
    page = rec.page
    try:
        fill(page, **FORM)
        page.click('[data-testid="train-button"]')
        assert wait_state(page, FINISHED) == "done", page.text_content('[data-testid="status"]')
        browser_losses = loss_log(page)["losses"]
        adapter = page.text_content('[data-testid="backend"]')
        rec.assert_clean(site_server.origin)
    finally:
        rec.close()
    native, engine = native_losses(built_site)
    assert len(browser_losses) == len(native) == FORM["steps"]
    worst = max(abs(b - n) / abs(n) for b, n in zip(browser_losses, native))
    print(f"\n[parity] browser ({adapter}) vs native ({engine}): {FORM['steps']} steps, "
          f"worst relative difference {worst:.2e}")
    assert browser_losses == pytest.approx(native, rel=RTOL)
    assert native[-1] < native[0]  # the run trained: the comparison is not of two constant curves
