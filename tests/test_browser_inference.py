"""The inference page in headless Chromium with WebGPU (SwiftShader on CI machines): a random GPT-2 saved
by transformers (2 layers, width 64, context 128, GPT-2's vocabulary and tokenizer files), imported with
`tabgpt import`, is uploaded through the `model-file` input; greedy generation of 64 tokens gives
transformers' `generate` ids and `tabgpt sample --temperature 0`'s text. The same folder's Hugging Face
files, uploaded directly, give the same. One of our own models (a .tgpt of the nano preset) generates.
Files that are not a GPT-2 get one line in the status."""

from __future__ import annotations

import json
import time

import pytest

from _browser import browser, built_site, open_page, playwright_instance, site_server  # noqa: F401
from _gpt2 import require_gpt2_files, save_random_gpt2
from _playground import STATUS, wait_ready, wait_state
from _require import module_available, require

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
PROMPT = "Hello world, said the"
NEW_TOKENS = 64
LOADED = ("loaded", "error")
FINISHED = ("done", "stopped", "error")


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    for name in ("torch", "transformers", "safetensors"):
        require(module_available(name), f"{name} is not installed (pip install -e .[test,bench])")
    require_gpt2_files()
    import torch

    from pyscript_app.cli import main
    from pyscript_app.inference.gpt2_checkpoint import read

    root = tmp_path_factory.mktemp("inference")
    model = save_random_gpt2(root / "hf", n_layer=2, n_embd=64, n_head=4, n_positions=128, tokenizer_files=True)
    assert main(["import", str(root / "hf"), "--out", str(root / "ck")]) == 0
    tok = read(root / "ck").tokenizer
    ids = torch.tensor([tok.encode(PROMPT)])
    with torch.no_grad():
        expected = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)[0, ids.shape[1]:].tolist()
    assert tok.eot_id not in expected and len(set(expected)) > 10
    return {"root": root, "expected": expected, "text": PROMPT + tok.decode(expected)}


def upload(page, paths) -> str:
    """Choose files in `model-file` -> the status's state once their load has ended ("loaded" or "error")."""
    page.evaluate(f"document.querySelector('{STATUS}').dataset.state = 'test-choosing'")  # not the last load's
    page.set_input_files('[data-testid="model-file"]', [str(p) for p in paths])
    return wait_state(page, LOADED, 120_000)


def generate(page) -> dict:
    page.fill('[data-testid="prompt-input"]', PROMPT)
    page.fill('[data-testid="temperature-input"]', "0")
    page.fill('[data-testid="top-k-input"]', "0")
    page.fill('[data-testid="max-tokens-input"]', str(NEW_TOKENS))
    page.click('[data-testid="generate-button"]')
    assert wait_state(page, FINISHED, 120_000) == "done", page.text_content(STATUS)
    return {
        "text": page.text_content('[data-testid="output"]'),
        "ids": json.loads(page.get_attribute('[data-testid="output"]', "data-token-ids")),
        "first_ms": float(page.get_attribute('[data-testid="first-token-ms"]', "data-value")),
        "ms_per_token": float(page.get_attribute('[data-testid="ms-per-token"]', "data-value")),
    }


def test_greedy_generation_in_the_page_equals_transformers(browser, site_server, gpt2, capsys):
    from pyscript_app.cli import main

    t0 = time.perf_counter()
    rec = open_page(browser, site_server.url("inference/"), timeout_ms=120_000)
    page = rec.page
    try:
        wait_ready(page)
        ready_s = time.perf_counter() - t0
        assert page.is_disabled('[data-testid="generate-button"]')

        # a tabgpt checkpoint (tabgpt import, f32), as f32 weights on the GPU
        page.select_option('[data-testid="weights-select"]', "f32")
        assert upload(page, [gpt2["root"] / "ck" / "checkpoint.tgpt"]) == "loaded", page.text_content(STATUS)
        assert "2 layers, width 64" in page.text_content('[data-testid="model-info"]')
        assert "as f32 weights" in page.text_content('[data-testid="model-info"]')
        got = generate(page)
        assert got["ids"] == gpt2["expected"]
        assert got["text"] == gpt2["text"]
        assert got["first_ms"] > 0 and got["ms_per_token"] > 0
        timings = [f"checkpoint: first token {got['first_ms']:.0f} ms, {got['ms_per_token']:.1f} ms/token"]

        # the same text as `tabgpt sample --temperature 0` (the numpy reference)
        capsys.readouterr()
        assert main(["sample", "--checkpoint", str(gpt2["root"] / "ck"), "--prompt", PROMPT, "--temperature", "0",
                     "--max-tokens", str(NEW_TOKENS), "-n", "1"]) == 0
        assert capsys.readouterr().out == got["text"] + "\n"

        # the Hugging Face files themselves, chosen together
        hf = gpt2["root"] / "hf"
        files = [hf / "config.json", hf / "model.safetensors", hf / "vocab.json", hf / "merges.txt"]
        assert upload(page, files) == "loaded", page.text_content(STATUS)
        assert "Hugging Face files" in page.text_content('[data-testid="model-info"]')
        got = generate(page)
        assert got["ids"] == gpt2["expected"] and got["text"] == gpt2["text"]
        timings.append(f"HF files: first token {got['first_ms']:.0f} ms, {got['ms_per_token']:.1f} ms/token")

        # f16 weights (any adapter: two per 32-bit word) give the numpy reference's text on the f16-rounded
        # weights (an import with --dtype f16); the checkpoint, not the files chosen last: a change event
        page.select_option('[data-testid="weights-select"]', "f16")
        assert upload(page, [gpt2["root"] / "ck" / "checkpoint.tgpt"]) == "loaded", page.text_content(STATUS)
        assert "as f16 weights" in page.text_content('[data-testid="model-info"]')
        got = generate(page)
        assert main(["import", str(hf), "--dtype", "f16", "--out", str(gpt2["root"] / "ck16")]) == 0
        capsys.readouterr()
        assert main(["sample", "--checkpoint", str(gpt2["root"] / "ck16"), "--prompt", PROMPT, "--temperature",
                     "0", "--max-tokens", str(NEW_TOKENS), "-n", "1"]) == 0
        assert capsys.readouterr().out == got["text"] + "\n"
        timings.append(f"f16: first token {got['first_ms']:.0f} ms, {got['ms_per_token']:.1f} ms/token")
        page.select_option('[data-testid="weights-select"]', "auto")

        # one of our own models (the lessons' nano, trained by the site build): it generates too
        assert upload(page, [site_server.root / "py" / "models" / "names-nano.tgpt"]) == "loaded", \
            page.text_content(STATUS)
        assert "tabgpt's own model" in page.text_content('[data-testid="model-info"]')
        page.fill('[data-testid="prompt-input"]', "an")
        page.fill('[data-testid="max-tokens-input"]', "8")
        page.fill('[data-testid="temperature-input"]', "0.8")
        page.click('[data-testid="generate-button"]')
        assert wait_state(page, FINISHED, 60_000) == "done", page.text_content(STATUS)
        assert page.text_content('[data-testid="output"]').startswith("an")

        # not a GPT-2: one line, nothing loaded
        other = gpt2["root"] / "other"
        other.mkdir()
        config = json.loads((hf / "config.json").read_text())
        (other / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
        assert upload(page, [other / "config.json", hf / "model.safetensors"]) == "error"
        assert "not a GPT-2 checkpoint: model_type is 'llama'" in page.text_content(STATUS)
        assert page.is_disabled('[data-testid="generate-button"]')
        (other / "notes.txt").write_text("not a model")
        assert upload(page, [other / "notes.txt"]) == "error"
        assert "not a model this page can run" in page.text_content(STATUS)
        rec.assert_clean(site_server.origin)
        print(f"\n[inference] {page.text_content('[data-testid=backend]')}: ready {ready_s:.1f} s; "
              + "; ".join(timings) + f"; {time.perf_counter() - t0:.1f} s in all")
    finally:
        rec.close()
