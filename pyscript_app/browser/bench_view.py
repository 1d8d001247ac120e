"""What the bench page shows, as HTML strings: pure Python (the DOM glue is bench_page.py).

Every value that reaches the page goes through html.escape; the page sets each row once
(DOM access from a worker is a synchronous round trip to the main thread)."""

from __future__ import annotations

import json
from html import escape
from urllib.parse import quote

from ..gpu.parity_runner import CaseResult, KernelTiming


def case_row(result: CaseResult) -> str:
    """<tr> of the correctness table: verdict, case, kernels, max error, detail of the first failure."""
    verdict = "PASS" if result.passed else "FAIL"
    detail = "" if result.passed else result.describe().split("  ", 2)[-1]
    err = result.max_abs_err
    return (f'<tr data-case="{escape(result.name)}" data-verdict="{verdict}">'
            f"<td><strong>{verdict}</strong></td><td><code>{escape(result.name)}</code></td>"
            f"<td>{escape(', '.join(result.kernels))}</td><td>{err:.3g}</td>"
            f"<td>{escape(detail)}</td></tr>")


def _rate(value: float | None, unit: str) -> str:
    return f"{value:.3g} {unit}" if value is not None else "–"


def timing_row(t: KernelTiming) -> str:
    """<tr> of the timing table: kernel, case, median ms per dispatch, GFLOP/s, GB/s."""
    return (f'<tr data-kernel="{escape(t.kernel)}"><td><code>{escape(t.kernel)}</code></td>'
            f"<td>{escape(t.case)}</td><td>{t.median_ms:.3g}</td>"
            f"<td>{_rate(t.gflops, 'GFLOP/s')}</td><td>{_rate(t.gbps, 'GB/s')}</td></tr>")


def json_data_url(report: dict) -> str:
    """The report as a data: URL for an <a download> link (no Blob objects across the worker boundary)."""
    return "data:application/json;charset=utf-8," + quote(json.dumps(report, indent=1))
