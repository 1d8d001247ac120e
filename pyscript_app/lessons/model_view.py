"""What the model lesson shows, as HTML strings: the parameter table and the parity badges."""

from __future__ import annotations

from html import escape

from ..config import ModelConfig
from ..gpu.parity_runner import CaseResult
from .model import formula_terms, param_groups, preset_rows


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def params_table(cfg: ModelConfig) -> str:
    """<table>: each group of tensors with shapes and counts, its share of the total, then the total."""
    total = cfg.param_count
    rows = []
    for g in param_groups(cfg):
        tensors = ", ".join(f"<code>{escape(t.name)}</code> {_shape(t.shape)}" for t in g.tensors)
        rows.append(f'<tr data-group="{escape(g.title)}"><td>{escape(g.title)}</td><td>{tensors}</td>'
                    f'<td class="tg-num">{g.count:,}</td><td class="tg-num">{100 * g.count / total:.1f} %</td></tr>')
    rows.append(f'<tr><td><strong>total</strong></td><td>L={cfg.n_layer} C={cfg.n_embd} H={cfg.n_head} '
                f'T={cfg.block_size} V={cfg.vocab_size}</td><td class="tg-num"><strong data-testid="param-total">'
                f"{total:,}</strong></td><td></td></tr>")
    return ("<table><thead><tr><th>part</th><th>tensors (shape)</th><th>parameters</th><th>share</th></tr></thead>"
            "<tbody>" + "".join(rows) + "</tbody></table>")


def formula_line(cfg: ModelConfig) -> str:
    """The closed form with this model's numbers: 'V·C + … = a + … = total'."""
    terms = formula_terms(cfg)
    return (" + ".join(escape(f) for f, _ in terms) + " = " + " + ".join(f"{v:,}" for _, v in terms)
            + f" = {sum(v for _, v in terms):,}")


def presets_table() -> str:
    """<table> of every preset's shape and parameter count (computed, not typed in)."""
    rows = "".join(f'<tr data-preset="{escape(name)}"><td><code>{escape(name)}</code></td><td>{c.n_layer}</td>'
                   f"<td>{c.n_embd}</td><td>{c.n_head}</td><td>{c.block_size}</td><td>{c.vocab_size}</td>"
                   f'<td class="tg-num">{c.param_count:,}</td></tr>' for name, c in preset_rows())
    return ("<table><thead><tr><th>preset</th><th>L</th><th>C</th><th>H</th><th>T</th><th>V</th>"
            "<th>parameters</th></tr></thead><tbody>" + rows + "</tbody></table>")


def badge(results: list[CaseResult] | None, running: str = "") -> tuple[str, str]:
    """(data-state, text) of an operation's parity badge: idle, running, pass or fail."""
    if running:
        return "running", f"running the parity cases… {running}"
    if results is None:
        return "idle", "WGSL vs the reference: not checked yet"
    if not results:
        return "fail", "no parity case covers this kernel file"
    passed = sum(r.passed for r in results)
    worst = max(r.max_abs_err for r in results)
    if passed == len(results):
        return "pass", f"PASS: WGSL matches the reference ({passed}/{len(results)} cases, max error {worst:.2g})"
    first = next(r for r in results if not r.passed)
    return "fail", f"FAIL: {len(results) - passed} of {len(results)} cases differ; {first.describe()}"
