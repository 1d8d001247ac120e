"""What the playground shows, as HTML strings (pure Python; browser/playground_page.py writes them).

A worker reaches the DOM through a synchronous round trip per access, so each event renders ONE
string for one innerHTML write. Every value that reaches the page goes through html.escape.
"""

from __future__ import annotations

import json
from html import escape

from .chart import loss_chart_svg
from .progress import Progress

SOFTWARE_ADAPTERS = ("swiftshader", "llvmpipe", "lavapipe", "warp", "software")


def is_software_adapter(info: dict) -> bool:
    """True for a CPU adapter: the fallback flag, or a known software rasteriser's name."""
    if info.get("fallback"):
        return True
    text = " ".join(str(info.get(k) or "") for k in ("vendor", "architecture", "device", "description")).lower()
    return any(name in text for name in SOFTWARE_ADAPTERS)


def adapter_label(info: dict) -> str:
    """One line for data-testid=backend, e.g. "software adapter (CPU, slow): google swiftshader"."""
    parts = [str(info.get(k) or "") for k in ("vendor", "architecture")]
    name = " ".join(p for p in parts if p) or "unknown adapter"
    detail = info.get("description") or info.get("device")
    if detail and str(detail).lower() not in name.lower():
        name += f" ({detail})"
    if is_software_adapter(info):
        return f"software adapter (CPU, slow): {name}"
    return f"WebGPU: {name}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"


def _value(testid: str, value: float | None, fmt: str) -> str:
    if value is None:
        return f'<span data-testid="{testid}">–</span>'
    return f'<span data-testid="{testid}" data-value="{value!r}">{format(value, fmt)}</span>'


def host_html(progress: Progress, replay: str = "") -> str:
    """The host's share of the training time, and its ms per step: near 100 % the host (Python and
    the step's encoding) bounds the run, near 0 % the GPU does. data-replay: how steps replay."""
    share, host_ms = progress.host_share, progress.host_ms_per_step
    attrs = f' data-replay="{escape(replay)}"' if replay else ""
    if share is None or host_ms is None:
        return f'<span data-testid="host-share"{attrs}>–</span>'
    return (f'<span data-testid="host-share" data-value="{share!r}" data-host-ms="{host_ms!r}"{attrs}>'
            f"{share * 100:.0f} % ({host_ms:.2f} ms/step)</span>")


def live_html(progress: Progress, vocab_size: int, replay: str = "") -> str:
    """Step, losses, tokens/s, ms/step, the host's share, elapsed, ETA and the chart; with the
    per-step loss log once finished. replay: how the page replays a step (host_html)."""
    p = progress
    stats = (
        '<dl class="tabgpt-stats">'
        f'<dt>step</dt><dd><span data-testid="step-count" data-step="{p.step}" data-state="{escape(p.state)}">'
        f"{p.step} / {p.total_steps}</span></dd>"
        f"<dt>train loss</dt><dd>{_value('train-loss', p.train_loss, '.4f')}</dd>"
        f"<dt>val loss</dt><dd>{_value('val-loss', p.val_loss, '.4f')}</dd>"
        f"<dt>tokens/s</dt><dd>{_value('tokens-per-s', p.tokens_per_s, ',.0f')}</dd>"
        f"<dt>ms/step</dt><dd>{_value('ms-per-step', p.ms_per_step, '.2f')}</dd>"
        f"<dt>host</dt><dd>{host_html(p, replay)}</dd>"
        f'<dt>elapsed</dt><dd><span data-testid="elapsed">{format_duration(p.elapsed_s if p.state != "idle" else None)}</span></dd>'
        f'<dt>ETA</dt><dd><span data-testid="eta">{format_duration(p.eta_s if p.state == "training" else None)}</span></dd>'
        "</dl>"
    )
    chart = loss_chart_svg(p.train_points, p.val_points, p.total_steps, vocab_size)
    log = ""
    if p.state in ("done", "stopped"):
        log = f'<pre hidden data-testid="loss-log">{escape(json.dumps(p.loss_log()))}</pre>'
    return stats + chart + log


def samples_html(samples: list[str], prompt: str, temperature: float, top_k: int) -> str:
    """The samples as a list; the settings that drew them above it."""
    how = f"temperature {temperature:g}, top-k {top_k or 'all'}" + (f", prompt {prompt!r}" if prompt else "")
    items = "".join(f"<li><code>{escape(s) or '(empty)'}</code></li>" for s in samples)
    return f'<p class="tabgpt-samples-how">{escape(how)}</p><ol class="tabgpt-samples">{items}</ol>'
