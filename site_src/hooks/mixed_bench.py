"""mkdocs hook: mixed-precision bench results, rendered at build time from benchmarks/results/*.json.

A page marks where they go with `<!-- mixed:bench -->` on a line of its own. The files are those
`tabgpt bench --backend gpu --precision mixed --json` writes (`"precision": "mixed"`), recognised by
their contents, never their names; measured.py's `<!-- measured:bench -->` leaves them to this hook.
For the NEWEST such file of each device and engine (by its recorded date-time, ties broken by name):
what ran where and when, the mixed-precision gate, the training step in both precisions beside
PyTorch eager in fp32 and under bf16 autocast (AMP), and the products on the matrix units beside
PyTorch's bf16 products. A figure a file lacks renders as "—"; a file that is not valid JSON, or
whose `steps`, `gemm_mixed` or `mixed_gate` has the wrong shape, fails the build naming it.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

from mkdocs.exceptions import PluginError

RESULTS_DIR = "benchmarks/results"
MARKER = re.compile(r"^[ \t]*<!--\s*mixed:bench\s*-->[ \t]*$", re.MULTILINE)
DASH = "—"


def _when(d: dict) -> datetime:
    value = d.get("date")
    if isinstance(value, str) and re.match(r"\d{4}-\d{2}-\d{2}", value):
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return datetime(1970, 1, 1, tzinfo=timezone.utc)


def load_mixed(results_dir: Path) -> list[tuple[Path, dict]]:
    """(path, data) of every mixed-precision bench file in results_dir, by name."""
    out = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise PluginError(f"mixed hook: {path} is not valid JSON: {e}") from e
        if not (isinstance(d, dict) and d.get("backend") == "gpu" and d.get("precision") == "mixed"):
            continue
        for key in ("steps", "gemm_mixed"):
            rows = d.get(key, [])
            if not isinstance(rows, list) or not all(isinstance(x, dict) for x in rows):
                raise PluginError(f"mixed hook: {path}: `{key}` must be a list of objects")
        if not isinstance(d.get("mixed_gate", {}), dict):
            raise PluginError(f"mixed hook: {path}: `mixed_gate` must be an object")
        out.append((path, d))
    return out


def newest_mixed(runs: list[tuple[Path, dict]]) -> list[tuple[Path, dict]]:
    """The newest file of each (device, engine), ordered by device then engine."""
    best: dict[tuple[str, str], tuple[Path, dict]] = {}
    for path, d in runs:
        adapter = d.get("adapter") if isinstance(d.get("adapter"), dict) else {}
        key = (str(adapter.get("device") or DASH), str(d.get("engine") or DASH))
        if key not in best or (_when(d), path.name) > (_when(best[key][1]), best[key][0].name):
            best[key] = (path, d)
    return [best[k] for k in sorted(best)]


def _num(v: object, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else DASH


def _ms(v: object) -> str:
    return _num(v, ".3f" if isinstance(v, (int, float)) and v < 1 else ".2f")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]


def _gate_models(gate: dict) -> str:
    """The gate's models, where the file lists them: their contexts and where their attention ran."""
    models = [m for m in gate.get("models") or [] if isinstance(m, dict)]
    if not models:
        return ""
    said = [f"context {(m.get('model') or {}).get('block_size', DASH)}, attention on {m.get('attention') or DASH}"
            for m in models]
    return "; models: " + "; ".join(said)


def render(results_dir: Path, root: Path | None = None) -> str:
    blocks = []
    for path, d in newest_mixed(load_mixed(results_dir)):
        adapter = d.get("adapter") if isinstance(d.get("adapter"), dict) else {}
        versions = d.get("versions") if isinstance(d.get("versions"), dict) else {}
        gate = d.get("mixed_gate") or {}
        name = path.resolve().relative_to(root.resolve()).as_posix() if root else path.name
        lines = [f"#### {adapter.get('device') or DASH} · {d.get('engine') or DASH} · mixed precision", ""]
        lines += [f"- **driver:** {adapter.get('description') or DASH}",
                  f"- **engine:** {' '.join(str(x) for x in (d.get('engine'), adapter.get('version')) if x) or DASH}",
                  f"- **beside:** PyTorch {versions.get('torch') or DASH} on {d.get('torch_device_name') or DASH}, "
                  "eager, fp32 (TF32 off) and bf16 autocast, same process",
                  f"- **date:** {d.get('date') or DASH}", f"- **command:** `{d.get('command') or DASH}`",
                  f"- **file:** `{name}`",
                  f"- **mixed-precision gate:** {'passed' if gate.get('passed') else 'FAILED' if gate else DASH} "
                  f"(per tensor, relative L2: at most {_num(gate.get('mixed_err'), '.1e')} from numpy with the same "
                  f"f16 rounding, {_num(gate.get('worst_ratio'), '.2f')} of the allowance set by numpy's own "
                  f"sensitivity; at most {_num(gate.get('f32_err'), '.1e')} from f32){_gate_models(gate)}", ""]
        lines += ["Training step (forward + backward + clip + AdamW, batch 8, full context), ms per step:", ""]
        lines += _table(["model", "ours fp32", "ours mixed", "PyTorch fp32", "PyTorch AMP bf16",
                         "mixed ÷ AMP", "mixed ÷ PyTorch fp32", "fp32 ÷ PyTorch fp32"],
                        [[str(s.get("model") or DASH), _ms(s.get("ours_ms")), _ms(s.get("mixed_ms")),
                          _ms(s.get("torch_ms")), _ms(s.get("torch_amp_bf16_ms")),
                          _num(s.get("ratio_mixed_over_torch_amp"), ".2f"),
                          _num(s.get("ratio_mixed_over_torch_fp32"), ".2f"),
                          _num(s.get("ratio_ours_over_torch"), ".2f")] for s in d.get("steps") or []])
        gemm = d.get("gemm_mixed") or []
        if gemm:
            lines += ["", "Products on the matrix units (f32 operands rounded to f16 in the kernel, f32 results) "
                      "beside PyTorch's bf16 products; the last column is our rate over PyTorch's:", ""]
            lines += _table(["product", "N × K × M", "ours ms", "ours GFLOP/s", "PyTorch bf16 ms", "PyTorch GFLOP/s",
                             "ours ÷ PyTorch (rate)"],
                            [[str(g.get("shape") or DASH), " × ".join(_num(g.get(k), "d") for k in ("N", "K", "M")),
                              _ms(g.get("ours_ms")), _num(g.get("ours_gflops"), ",.0f"), _ms(g.get("torch_bf16_ms")),
                              _num(g.get("torch_bf16_gflops"), ",.0f"),
                              _num(g.get("rate_ratio_ours_over_torch_bf16"), ".2f")] for g in gemm])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "No mixed-precision `tabgpt bench` result files yet."


def on_page_markdown(markdown: str, page, config, files) -> str:
    root = Path(config.config_file_path).resolve().parent
    return MARKER.sub(lambda m: render(root / RESULTS_DIR, root), markdown)
