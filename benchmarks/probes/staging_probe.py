"""Staging probe (an experiment): the matmul entries' second staged load of each operand per k-slice
(`if (tid + n < TK * T / 4)`, never true at 128 x 128 tiles where every invocation stages one vec4
of each operand) made a compile-time test (`TK * T / 4 > n && ...`, override constants only), so the
driver drops the dead load and its registers. Timed through the project's own entries (each variant
a patched copy of shaders/): GEMM 4096^3, the large model's forward shapes, the medium and large steps.

    python3 benchmarks/probes/staging_probe.py dawn OUT.json [--keep DIR]    # on the GPU machine
    python3 benchmarks/probes/staging_probe.py wgpu-native OUT.json --smoke

--keep DIR: also leave the patched shader folder in DIR (for TABGPT_SHADERS=DIR tabgpt bench)."""
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shader_dirs_probe import measure  # noqa: E402

from pyscript_app.gpu.native import open_device  # noqa: E402
from pyscript_app.gpu.registry import shader_dir  # noqa: E402


def patch(s: str) -> str:
    for t in ("TM", "TN"):
        s = s.replace(f"if (tid + n < TK * {t} / 4u)", f"if (TK * {t} / 4u > n && tid + n < TK * {t} / 4u)")
    return s


def variant_dir(root: Path, name: str) -> Path:
    d = root / name
    shutil.copytree(shader_dir(), d)
    if name.startswith("static"):
        for f in ("matmul.wgsl", "matmul_tiles.wgsl", "matmul_vec4.wgsl"):
            p = d / f
            s = p.read_text()
            p.write_text(patch(s))
            assert f == "matmul.wgsl" or patch(s) != s
    return d


def main():
    engine, out_path = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    res = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("base", "static", "base", "static"):
            d = variant_dir(Path(tmp), name + str(len(res["variants"])))
            if "--keep" in sys.argv and name == "static":
                shutil.copytree(d, sys.argv[sys.argv.index("--keep") + 1], dirs_exist_ok=True)
            key = name if name not in res["variants"] else name + " (again)"
            row = measure(open_device(engine, shader_dir=d), key, smoke)
            res["variants"][key] = {"gemm": row["gemm"], "steps": row["steps"]}
    json.dump(res, open(out_path, "w"), indent=1)

if __name__ == "__main__":
    main()
