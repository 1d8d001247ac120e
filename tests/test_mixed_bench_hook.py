"""site_src/hooks/mixed_bench.py: the mixed-precision bench tables, rendered from result files; and
measured.py leaving those files to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mkdocs.exceptions import PluginError

from _hooks import load_hook


def _file(folder: Path, name: str, date: str, mixed_ms: float, **extra) -> Path:
    d = {"backend": "gpu", "precision": "mixed", "engine": "dawn", "date": date, "command": "tabgpt bench --precision mixed",
         "adapter": {"device": "NVIDIA H100", "description": "580.1"}, "versions": {"torch": "2.11"},
         "torch_device_name": "NVIDIA H100", "mixed_gate": {"passed": True, "mixed_err": 1.2e-2, "worst_ratio": 0.31, "f32_err": 3.4e-2},
         "steps": [{"model": "large", "ours_ms": 15.9, "mixed_ms": mixed_ms, "torch_ms": 13.2, "torch_amp_bf16_ms": 6.1,
                    "ratio_mixed_over_torch_amp": mixed_ms / 6.1, "ratio_mixed_over_torch_fp32": mixed_ms / 13.2,
                    "ratio_ours_over_torch": 15.9 / 13.2}],
         "gemm_mixed": [{"shape": "4096^3", "N": 4096, "K": 4096, "M": 4096, "ours_ms": 0.9, "ours_gflops": 152700.0,
                         "torch_bf16_ms": 0.19, "torch_bf16_gflops": 723000.0, "rate_ratio_ours_over_torch_bf16": 0.21}]}
    d.update(extra)
    path = folder / name
    path.write_text(json.dumps(d), encoding="utf-8")
    return path


def test_the_newest_file_of_a_device_renders_its_steps_gate_and_products(tmp_path):
    hook = load_hook("mixed_bench.py")
    _file(tmp_path, "a.json", "2026-12-07T16:00:00+00:00", 9.0)
    _file(tmp_path, "b.json", "2026-12-07T17:00:00+00:00", 7.5)
    (tmp_path / "other.json").write_text(json.dumps({"backend": "gpu", "steps": []}), encoding="utf-8")
    text = hook.render(tmp_path)
    assert text.count("mixed precision") == 1 and "`b.json`" in text and "`a.json`" not in text
    assert "| large | 15.90 | 7.50 | 13.20 | 6.10 | 1.23 | 0.57 | 1.20 |" in text
    assert "| 4096^3 | 4096 × 4096 × 4096 | 0.900 | 152,700 | 0.190 | 723,000 | 0.21 |" in text
    assert "passed (per tensor, relative L2: at most 1.2e-02 from numpy with the same f16 rounding, 0.31 of" in text
    assert "at most 3.4e-02 from f32" in text
    fp32 = load_hook("measured.py").render_bench(tmp_path)  # renders other.json only
    assert "other.json" in fp32 and "a.json" not in fp32 and "b.json" not in fp32


def test_a_misshapen_file_fails_the_build_naming_it(tmp_path):
    hook = load_hook("mixed_bench.py")
    _file(tmp_path, "bad.json", "2026-12-07", 7.0, steps={"large": 1})
    with pytest.raises(PluginError, match="bad.json"):
        hook.render(tmp_path)
    assert hook.render(tmp_path / "empty").startswith("No mixed-precision")


def test_the_gate_names_its_models_contexts_and_attention_where_the_file_lists_them(tmp_path):
    hook = load_hook("mixed_bench.py")
    gate = {"passed": True, "mixed_err": 1e-2, "worst_ratio": 0.5, "f32_err": 3e-2,
            "models": [{"model": {"block_size": 64}, "attention": "blocks kernels (f32)"},
                       {"model": {"block_size": 256}, "attention": "matrix units"}]}
    _file(tmp_path, "a.json", "2026-12-07T16:00:00+00:00", 9.0, mixed_gate=gate)
    text = hook.render(tmp_path)
    assert ("from f32); models: context 64, attention on blocks kernels (f32); context 256, attention on matrix units"
            in text)
