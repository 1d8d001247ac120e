"""site_src/hooks/gemm_probes.py: the GEMM probes' kernel tables, rendered from result files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mkdocs.exceptions import PluginError

from _hooks import load_hook


def _file(folder: Path, name: str, probe: str, date: str, kernels: dict, **extra) -> Path:
    d = {"date": date, "command": f"benchmarks/probes/{probe} OUT.json",
         "adapter": {"device": "NVIDIA H100", "description": "580.1", "backend_type": "Vulkan"}, "kernels": kernels}
    d.update(extra)
    path = folder / name
    path.write_text(json.dumps(d), encoding="utf-8")
    return path


def test_the_newest_file_of_each_probe_renders_its_kernels_and_peers(tmp_path):
    hook = load_hook("gemm_probes.py")
    _file(tmp_path, "a.json", "gemm_ceiling_probe.py", "2026-12-07T20:00:00+0000", {"regs": {"tflops": 100.0}})
    _file(tmp_path, "b.json", "gemm_ceiling_probe.py", "2026-12-07T23:51:54+0000",
          {"regs 2x2": {"tflops": 610.12}, "f32 fma shared": {"tflops": 49.2}},
          torch={"tflops_4096_float32": 51.8, "tflops_4096_float16": 727.6})
    _file(tmp_path, "c.json", "gemm_staging_probe.py", "2026-12-08T00:17:18+0000",
          {"f32 TK8": {"tflops": 35.8, "rel_err": 2e-6}, "coop broken": {"error": "GPUValidationError: too big\nmore"}})
    _file(tmp_path, "d.json", "direct_gemm_probe.py", "2026-12-08T03:00:00+0000",
          {"direct 2x2": {"tflops": 150.04, "ms": 0.9}, "rounding pass, both operands": {"ms": 0.0412, "exact": True}})
    (tmp_path / "other.json").write_text(json.dumps({"backend": "gpu", "kernels": {}}), encoding="utf-8")
    text = hook.render(tmp_path)
    assert "`b.json`" in text and "`a.json`" not in text and "`c.json`" in text and "other.json" not in text
    assert "| regs 2x2 | 610.1 |" in text and "| f32 fma shared | 49.2 |" in text
    assert "PyTorch in the same run, 4096³, TFLOP/s:** fp32 (TF32 off) 51.8, f16 727.6" in text
    assert "| f32 TK8 | 35.8 |" in text and "| coop broken | failed: GPUValidationError: too big |" in text
    assert "| direct 2x2 | 150.0 |" in text and "| rounding pass, both operands | 0.041 ms |" in text
    assert text.index("gemm_ceiling_probe.py") < text.index("gemm_staging_probe.py") < text.index("direct_gemm_probe.py")


def test_a_misshapen_file_fails_the_build_naming_it(tmp_path):
    hook = load_hook("gemm_probes.py")
    _file(tmp_path, "bad.json", "gemm_staging_probe.py", "2026-12-08", {"f32 TK8": 35.8})
    with pytest.raises(PluginError, match="bad.json"):
        hook.render(tmp_path)
    assert hook.render(tmp_path / "empty").startswith("No GEMM probe")
