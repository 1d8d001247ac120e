"""What the bench page shows, as HTML strings: pure Python (the DOM glue is bench_page.py).

Every value that reaches the page goes through html.escape; the page sets each row once
(DOM access from a worker is a synchronous round trip to the main thread)."""

from __future__ import annotations

import json
from html import escape
from urllib.parse import quote

from ..gpu.parity_runner import CaseResult, KernelTiming
from ..gpu.step_bench import DispatchShare, StepTiming


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


def step_row(t: StepTiming) -> str:
    """<tr> of the training-step table: model, batch x context tokens, dispatches, ms per step, tokens/s."""
    return (f'<tr data-model="{escape(t.model)}" data-tokens-per-s="{t.tokens_per_s:.1f}" '
            f'data-dispatches="{t.dispatches_per_step}"><td><code>{escape(t.model)}</code></td>'
            f"<td>{t.tokens_per_step}</td><td>{t.dispatches_per_step}</td><td>{t.ms_per_step:.3g}</td>"
            f"<td>{t.tokens_per_s:,.0f}</td></tr>")


def share_row(s: DispatchShare, whole_ms: float) -> str:
    """<tr> of the step profile: kernel (and tile), dispatches per step, isolated ms, share of the step."""
    share = 100.0 * s.ms / whole_ms if whole_ms > 0 else 0.0
    return (f'<tr data-label="{escape(s.label)}"><td><code>{escape(s.label)}</code></td>'
            f"<td>{s.count}</td><td>{s.ms:.3g}</td><td>{share:.0f}%</td></tr>")


def json_data_url(report: dict) -> str:
    """The report as a data: URL for an <a download> link (no Blob objects across the worker boundary)."""
    return "data:application/json;charset=utf-8," + quote(json.dumps(report, indent=1))
