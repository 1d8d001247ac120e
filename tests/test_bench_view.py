"""pyscript_app/browser/bench_view.py: the bench page's rows and download link (pure Python)."""

from __future__ import annotations

import json
from urllib.parse import unquote

from pyscript_app.browser.bench_view import case_row, json_data_url, timing_row
from pyscript_app.gpu.parity_runner import CaseResult, KernelTiming, OutputCheck


def test_passing_case_row_shows_verdict_kernels_and_max_error():
    r = CaseResult("matmul_7x5x3", ["matmul_forward"], [OutputCheck("y", 21, 0, 2.5e-7, -1)])
    row = case_row(r)
    assert 'data-verdict="PASS"' in row and "matmul_forward" in row and "2.5e-07" in row


def test_failing_case_row_escapes_and_explains():
    r = CaseResult("bad<case>", ["k"], [OutputCheck("y<0>", 4, 1, 3.0, 2, 5.0, 2.0)])
    row = case_row(r)
    assert 'data-verdict="FAIL"' in row
    assert "<case>" not in row and "&lt;case&gt;" in row
    assert "1/4 off" in row and "y&lt;0&gt;" in row


def test_timing_row_shows_rates_only_when_known():
    row = timing_row(KernelTiming("matmul_forward", "m", 2.0, [2.0], flops=4_000_000, bytes=0))
    assert "2 GFLOP/s" in row and "GB/s" not in row


def test_json_data_url_round_trips():
    report = {"summary": "1 passed, 0 failed", "text": "a&b #c"}
    url = json_data_url(report)
    assert url.startswith("data:application/json;charset=utf-8,") and "#" not in url
    assert json.loads(unquote(url.split(",", 1)[1])) == report
