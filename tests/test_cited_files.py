"""Every benchmark file the docs and the code's comments cite exists: a figure must lead to its data.
(The pages' "Measured" sections themselves: test_measured_hook.py.)

Cited forms: repository paths under benchmarks/ (`benchmarks/results/x.json`, `benchmarks/probes/y.py`),
dated result names on their own (`split-probe2-h200-dawn-2026-12-03.json`, `quality/...metrics.jsonl`;
result files are dated) and probe scripts by name (`gemm_core_probe.py`). `a{1,2}b` names a1b and a2b;
globs and placeholders (`*.json`, `<name>`, `NAME.json`) are skipped.
"""

from __future__ import annotations

import functools
import re

from _require import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
PROBES = REPO_ROOT / "benchmarks" / "probes"

PATH = re.compile(r"benchmarks/[\w./*{},<>-]*[\w/*}>]")
RESULT = re.compile(r"[\w.*{},<>-]+\.(?:json|metrics\.jsonl)\b")
PROBE = re.compile(r"\b\w+_probe\.py\b")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
BRACES = re.compile(r"\{([^{}]*)\}")


def _sources() -> list:
    files = [REPO_ROOT / "README.md", REPO_ROOT / "benchmarks/README.md", RESULTS / "quality/README.md"]
    for folder, patterns in (("pyscript_app", ("*.py",)), ("server", ("*.py",)), ("shaders", ("*.wgsl",)),
                             ("site_src", ("*.md", "*.py"))):
        for pattern in patterns:
            files += sorted((REPO_ROOT / folder).rglob(pattern))
    return files


def _names(cited: str) -> list[str]:
    """`a{1,2}b` -> [a1b, a2b]; [] for a glob or a placeholder (`*.json`, `<name>`, `NAME.json`)."""
    last = cited.rstrip("/").split("/")[-1]
    if re.search(r"[*<]", cited) or re.fullmatch(r"(?!README)[A-Z_]+(\.\w+)+", last):
        return []
    m = BRACES.search(cited)
    if not m:
        return [cited]
    return [n for part in m.group(1).split(",") for n in _names(cited[:m.start()] + part + cited[m.end():])]


@functools.lru_cache(maxsize=1)
def _result_names() -> frozenset[str]:
    """The file names under benchmarks/results/ and its folders (quality/, variants/)."""
    return frozenset(p.name for p in RESULTS.rglob("*") if p.is_file())


def _missing(text: str) -> set[str]:
    """The cited benchmark files in `text` that the repository lacks."""
    missing = set()
    for path in PATH.findall(text):
        missing.update(n for n in _names(path) if not (REPO_ROOT / n).exists())
    for name in RESULT.findall(text):
        for base in (n.split("/")[-1] for n in _names(name)):
            if DATE.search(base) and base not in _result_names():
                missing.add(base)
    missing.update(n for n in PROBE.findall(text) if not (PROBES / n).exists())
    return missing


def test_the_checker_sees_each_form():
    assert _missing("`benchmarks/probes/gone.py`, benchmarks/README.md.") == {"benchmarks/probes/gone.py"}
    assert _missing("(gone_probe.py, gemm_core_probe.py)") == {"gone_probe.py"}
    assert _missing("quality/gone-h200-2026-01-01.metrics.jsonl") == {"gone-h200-2026-01-01.metrics.jsonl"}
    assert _missing("split-probe{2,9}-h200-dawn-2026-12-03.json") == {"split-probe9-h200-dawn-2026-12-03.json"}
    assert _missing("benchmarks/results/*.json, benchmarks/results/NAME.json, config.json") == set()


def test_every_cited_benchmark_file_exists():
    sources = _sources()
    assert len(sources) > 50
    missing = [(str(f.relative_to(REPO_ROOT)), m) for f in sources
               for m in sorted(_missing(f.read_text(encoding="utf-8")))]
    assert not missing, missing
