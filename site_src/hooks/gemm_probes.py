"""mkdocs hook: the GEMM probes' results (where each GEMM's time goes), rendered at build time from
benchmarks/results/*.json.

A page marks where they go with `<!-- probes:gemm -->` on a line of its own. The files are those
`benchmarks/probes/gemm_ceiling_probe.py`, `gemm_staging_probe.py` and `direct_gemm_probe.py` write,
recognised by their contents: a `command` naming one of those scripts and a `kernels` object of
{name: {"tflops": ...}}. For the NEWEST such file of each probe and device (by its recorded date-time,
ties broken by name), in that order of probes: the device, driver, date, command and file, then every
kernel's rate (its time, for a row with a time and no rate: a pass that does no multiplies), and
PyTorch's in the same run where the file has it. A file naming a probe whose `kernels` is not an object of objects fails the
build naming it; a kernel that failed shows its error's first line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mkdocs.exceptions import PluginError

RESULTS_DIR = "benchmarks/results"
MARKER = re.compile(r"^[ \t]*<!--\s*probes:gemm\s*-->[ \t]*$", re.MULTILINE)
PROBES = ("gemm_ceiling_probe.py", "gemm_staging_probe.py", "direct_gemm_probe.py")
DASH = "—"
TORCH_PEERS = (("tflops_4096_float32", "fp32 (TF32 off)"), ("tflops_4096_float16", "f16"),
               ("tflops_4096_bfloat16", "bf16"))


def _probe(d: dict) -> str | None:
    command = d.get("command")
    if not isinstance(command, str):
        return None
    return next((p for p in PROBES if p in command), None)


def load_probes(results_dir: Path) -> list[tuple[Path, dict, str]]:
    """(path, data, probe script) of every GEMM probe result in results_dir, by name."""
    out = []
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise PluginError(f"gemm probes hook: {path} is not valid JSON: {e}") from e
        probe = _probe(d) if isinstance(d, dict) else None
        if probe is None:
            continue
        kernels = d.get("kernels")
        if not isinstance(kernels, dict) or not all(isinstance(v, dict) for v in kernels.values()):
            raise PluginError(f"gemm probes hook: {path}: `kernels` must be an object of objects")
        out.append((path, d, probe))
    return out


def newest(runs: list[tuple[Path, dict, str]]) -> list[tuple[Path, dict, str]]:
    """The newest file of each (probe, device), ordered by probe (as PROBES lists them) then device."""
    best: dict[tuple[str, str], tuple[Path, dict, str]] = {}
    for path, d, probe in runs:
        adapter = d.get("adapter") if isinstance(d.get("adapter"), dict) else {}
        key = (probe, str(adapter.get("device") or DASH))
        when = (str(d.get("date") or ""), path.name)
        if key not in best or when > (str(best[key][1].get("date") or ""), best[key][0].name):
            best[key] = (path, d, probe)
    return [best[k] for k in sorted(best, key=lambda k: (PROBES.index(k[0]), k[1]))]


def _rate(v: object) -> str:
    return format(v, ".1f") if isinstance(v, (int, float)) and not isinstance(v, bool) else DASH


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(results_dir: Path, root: Path | None = None) -> str:
    blocks = []
    for path, d, probe in newest(load_probes(results_dir)):
        adapter = d.get("adapter") if isinstance(d.get("adapter"), dict) else {}
        name = path.resolve().relative_to(root.resolve()).as_posix() if root else path.name
        lines = [f"#### {adapter.get('device') or DASH} · `{probe}`", "",
                 f"- **driver:** {adapter.get('description') or DASH} ({adapter.get('backend_type') or DASH})",
                 f"- **date:** {d.get('date') or DASH}", f"- **command:** `{d.get('command') or DASH}`",
                 f"- **file:** `{name}`"]
        torch = d.get("torch") if isinstance(d.get("torch"), dict) else {}
        peers = [f"{label} {_rate(torch[key])}" for key, label in TORCH_PEERS if key in torch]
        if peers:
            lines.append("- **PyTorch in the same run, 4096³, TFLOP/s:** " + ", ".join(peers))
        lines += ["", "| kernel | TFLOP/s |", "|---|---|"]
        for kernel, row in d["kernels"].items():
            error = row.get("error")
            if error and "tflops" not in row:
                value = f"failed: {str(error).splitlines()[0]}"
            elif "tflops" not in row and isinstance(row.get("ms"), (int, float)):
                value = f"{row['ms']:.3f} ms"
            else:
                value = _rate(row.get("tflops"))
            lines.append(f"| {_cell(str(kernel))} | {_cell(value)} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else "No GEMM probe result files yet."


def on_page_markdown(markdown: str, page, config, files) -> str:
    root = Path(config.config_file_path).resolve().parent
    return MARKER.sub(lambda m: render(root / RESULTS_DIR, root), markdown)
