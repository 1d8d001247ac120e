"""benchmarks/node_gpu_playground.py end to end on this machine's software GPU: the page's Python
(Pyodide running BrowserExecutor, step_replay.js and TrainingSession) under Deno's own WebGPU and
under Node.js with dawn.node, each beside the native host (wgpu-native over lavapipe), `nano` for a
few steps. Bad arguments get one line and exit code 2.

Losses: both hosts train the same model from the same seed on the same batches with the same WGSL,
so step for step they may differ only by float32 rounding where two shader compilers order or fuse
operations differently. The gate is 1e-4 relative, the project's GPU-vs-numpy step gate
(tests/test_gpu_parity_training.py), which a kernel or batch error exceeds by orders of magnitude
(a wrong batch or a skipped update changes the loss at the 1e-2 level). Seen here: equal bit for
bit under Deno (wgpu's naga on both sides); at most ~1e-7 under Dawn's OpenGL ES backend.

dawn-node needs a Dawn adapter: Dawn refuses lavapipe's Vulkan, so the test asks dawn.node for its
OpenGL ES backend on Mesa's llvmpipe (EGL, surfaceless) with --feature-level compatibility.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _gpu import gpu  # noqa: F401  (a native adapter, or skip locally / fail in CI)
from _require import REPO_ROOT, require

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(180)]

SCRIPT = REPO_ROOT / "benchmarks" / "node_gpu_playground.py"
RUNNER = REPO_ROOT / "benchmarks" / "node_gpu" / "runner.mjs"
DENO = REPO_ROOT / "node_modules" / "@deno" / "linux-x64-glibc" / "deno"
DAWN_NODE = REPO_ROOT / "node_modules" / "webgpu" / "dist" / "linux-x64" / "dawn.node"
LOSS_RTOL = 1e-4
STEPS, WARMUP = 8, 2


def run_bench(tmp_path: Path, data_mirror: Path, *extra: str, env: dict | None = None) -> dict:
    out = tmp_path / "result.json"
    cmd = [sys.executable, str(SCRIPT), "--native", "wgpu-native", "--models", "nano", "--steps", str(STEPS),
           "--warmup", str(WARMUP), "--native-runs", "1", "--timeout", "120", "--json", str(out), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=170, cwd=REPO_ROOT,
                          env={**os.environ, "TABGPT_DATA_MIRROR": str(data_mirror), **(env or {})})
    assert out.is_file(), proc.stderr[-3000:]
    result = json.loads(out.read_text())
    page = result["runs"]["nano"]["page"]
    assert proc.returncode == 0, json.dumps(page)[-3000:] + proc.stderr[-2000:]
    return result


def check_against_native(result: dict) -> dict:
    run = result["runs"]["nano"]
    page, native = run["page"], run["native"][0]
    assert page["host"] == "pyodide" and page["replay"] == "javascript", page.get("replay")
    assert page["adapter_info"]["engine"] == "browser-webgpu" and native["host"] == "native"
    assert "webgpu_errors" not in page, page["webgpu_errors"]
    for part, steps in (("warmup", WARMUP), ("timed", STEPS)):
        got, want = page[part]["losses"], native[part]["losses"]
        assert len(got) == len(want) == steps, (part, len(got), len(want))
        assert all(math.isfinite(x) for x in got)
        worst = max(abs(a - b) / abs(b) for a, b in zip(got, want))
        assert worst <= LOSS_RTOL, f"{part}: step losses differ by {worst:.3g} relative: {got} vs {want}"
    assert abs(page["timed"]["losses"][0] - math.log(1024)) < 0.5  # a fresh model's loss, near ln V
    row = result["table"][0]
    assert row["model"] == "nano" and row["page_tokens_per_s"] > 0 and row["native_tokens_per_s"] > 0
    assert row["ratio"] == pytest.approx(row["page_tokens_per_s"] / row["native_tokens_per_s"])
    assert row["losses_timed"]["steps_compared"] == STEPS
    return page


def test_deno_webgpu_trains_the_page_path_with_the_native_losses(gpu, data_mirror, tmp_path):  # noqa: F811
    require(DENO.is_file(), f"{DENO} is missing (run `npm ci`)")
    page = check_against_native(run_bench(tmp_path, data_mirror, "--engine", "deno-builtin"))
    assert page["engine"] == "deno-builtin" and page["runtime"].startswith("Deno ")


def test_dawn_node_trains_the_page_path_with_the_native_losses(gpu, data_mirror, tmp_path):  # noqa: F811
    require(shutil.which("node") is not None, "Node.js is not on PATH")
    require(DAWN_NODE.is_file(), f"{DAWN_NODE} is missing (run `npm ci`)")
    require(Path("/usr/lib/x86_64-linux-gnu/libEGL_mesa.so.0").is_file(),
            "Mesa's EGL is missing (apt-get install libegl1 libgl1-mesa-dri)")
    result = run_bench(tmp_path, data_mirror, "--engine", "dawn-node", "--dawn-option", "backend=opengles",
                       "--feature-level", "compatibility", env={"EGL_PLATFORM": "surfaceless"})
    page = check_against_native(result)
    assert page["engine"] == "dawn-node" and page["webgpu_version"] and page["feature_level"] == "compatibility"


@pytest.mark.parametrize("args, words", [
    (["--models", "nano,huge"], "unknown model huge"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--bundle", "x.tar.xz", "--engine", "deno-builtin"], "--bundle carries Node.js"),
    (["--bundle", "/nonexistent/bundle.tar.xz"], "cannot unpack /nonexistent/bundle.tar.xz"),
])
def test_bad_arguments_get_one_line_and_exit_code_2(args, words):
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO_ROOT)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("args, words", [
    (["--engine", "metal", "--job", "j", "--out", "o"], 'unknown engine "metal"'),
    (["--engine", "dawn-node", "--job", "j"], "--out is required"),
    (["--engine", "deno-builtin", "--job", "j", "--out", "o"], "runs under Deno"),
    (["--engine", "dawn-node", "--job", "/nonexistent.json", "--out", "o"], "cannot read the job"),
    (["--engine", "dawn-node", "--feature-level", "x", "--job", "j", "--out", "o"], 'unknown feature level "x"'),
])
def test_runner_bad_arguments_get_one_line_and_exit_code_2(args, words):
    require(shutil.which("node") is not None, "Node.js is not on PATH")
    proc = subprocess.run(["node", str(RUNNER), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr



def test_a_failed_host_leaves_the_other_hosts_figures_and_no_ratio():
    sys.path.insert(0, str(REPO_ROOT))
    from benchmarks.node_gpu_playground import compare_losses, preset_result

    native = {"timed": {"tokens_per_s": 100.0, "losses": [7.0, 6.5]}, "warmup": {"losses": [7.0]}}
    row = preset_result("small", {"error": "exit code 1"}, [native, {"error": "timed out after 150 s"}])
    assert row["native_tokens_per_s"] == 100.0 and "ratio" not in row and "page_tokens_per_s" not in row
    page = {"timed": {"tokens_per_s": 90.0, "losses": [7.0, 6.25]}, "warmup": {"losses": [7.0]}}
    row = preset_result("small", page, [native])
    assert row["ratio"] == pytest.approx(0.9) and row["meets_goal"] is True
    assert row["losses_timed"] == {"steps_compared": 2, "same_length": True, "equal": False, "max_abs_diff": 0.25,
                                   "max_rel_diff": pytest.approx(0.25 / 6.5), "first_differing_step": 2}
    assert compare_losses([1.0], [1.0, 2.0])["same_length"] is False
