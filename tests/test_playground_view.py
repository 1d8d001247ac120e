"""pyscript_app/playground/view.py: what the page shows, as escaped HTML strings."""

from __future__ import annotations

import json
import re
from html import unescape

from pyscript_app.playground.progress import Progress
from pyscript_app.playground.view import adapter_label, format_duration, is_software_adapter, live_html, samples_html

TESTIDS = ("step-count", "train-loss", "val-loss", "tokens-per-s", "elapsed", "eta")


def test_software_adapters_are_named_as_cpu_and_slow():
    swiftshader = {"vendor": "google", "architecture": "swiftshader", "description": "", "fallback": False}
    assert is_software_adapter(swiftshader)
    assert adapter_label(swiftshader) == "software adapter (CPU, slow): google swiftshader"
    assert adapter_label({"vendor": "x", "fallback": True}).startswith("software adapter (CPU, slow)")
    gpu = {"vendor": "nvidia", "architecture": "ampere", "description": "RTX 3060", "fallback": False}
    assert not is_software_adapter(gpu) and adapter_label(gpu) == "WebGPU: nvidia ampere (RTX 3060)"


def test_durations_read_naturally():
    assert [format_duration(s) for s in (None, 4.4, 75, 3725)] == ["–", "4 s", "1 min 15 s", "1 h 02 min"]


def test_live_html_carries_every_test_hook_and_the_loss_log_once_finished():
    p = Progress(total_steps=20)
    p.apply({"type": "init", "step": 0, "backend": "gpu"})
    p.apply({"type": "step", "step": 10, "loss": 6.25, "tokens_per_s": 1234.5, "elapsed_s": 2.0, "lr": 0})
    html = live_html(p, 1024)
    for testid in TESTIDS:
        assert f'data-testid="{testid}"' in html, testid
    assert 'data-step="10"' in html and "10 / 20" in html and "6.2500" in html and "1,234" in html
    assert "loss-log" not in html
    p.step_losses.extend([6.9, 6.25])
    p.apply({"type": "done", "step": 10, "stopped": True, "elapsed_s": 2.0})
    log = re.search(r'<pre hidden data-testid="loss-log">(.*?)</pre>', live_html(p, 1024)).group(1)
    assert json.loads(unescape(log))["losses"] == [6.9, 6.25]


def test_samples_are_escaped():
    html = samples_html(["<b>x</b>", ""], prompt="a&b", temperature=0.8, top_k=0)
    assert "<b>" not in html and "&lt;b&gt;" in html and "a&amp;b" in html and "top-k all" in html
    assert html.count("<li>") == 2


def test_ms_per_step_and_the_host_share_are_shown_with_how_steps_replay():
    p = Progress(total_steps=40)
    assert 'data-testid="ms-per-step">–' in live_html(p, 1024)
    p.ms_per_step, p.host_share = 12.5, 0.25
    html = live_html(p, 1024, "javascript")
    assert 'data-testid="ms-per-step" data-value="12.5">12.50<' in html
    assert re.search(r'data-testid="host-share" data-value="0.25" data-host-ms="3.125" data-replay="javascript">'
                     r"25 % \(3.12 ms/step\)<", html)
