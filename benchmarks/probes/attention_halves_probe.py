"""Attention backward halves probe (an experiment): which half of attention_rows_backward's one dispatch
(the dq workgroups or the dk/dv ones) takes the time at the medium and large shapes (B=8, full context).
Variants are patched copies of shaders/ (the executor's shader_dir): `dq_only` returns at the top of
backward_dkv, `dkv_only` at the top of backward_dq (outputs then partly unwritten: timing only).

    python3 benchmarks/probes/attention_halves_probe.py dawn|wgpu-native OUT.json"""
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, ".")
sys.path.insert(0, "benchmarks/probes")
from attention_probe_timing import attention_inputs, timed  # noqa: E402
from pyscript_app.gpu.attention_ops import rows_backward_overrides  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402
from pyscript_app.gpu.registry import shader_dir  # noqa: E402

SHAPES = {"medium": (8, 128, 256, 8), "large": (8, 256, 512, 8)}
HEADS = {"dq_only": "fn backward_dkv(tile: u32, h: u32, b: u32, lid: u32) {\n",
         "dkv_only": "fn backward_dq(tile: u32, h: u32, b: u32, lid: u32) {\n"}


def variant_dir(root: Path, name: str) -> Path:
    d = root / name
    shutil.copytree(shader_dir(), d)
    if name in HEADS:
        f = d / "attention_rows_backward.wgsl"
        s = f.read_text()
        assert HEADS[name] in s
        f.write_text(s.replace(HEADS[name], HEADS[name] + "  if (params.T > 0u) { return; }  // uniform: Tint accepts the barriers after it\n"))
    return d


def main():
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "shapes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("both", "dq_only", "dkv_only", "both"):
            ex = open_device(sys.argv[1], shader_dir=variant_dir(Path(tmp), name + str(time.time())))
            for shape, (B, T, C, H) in SHAPES.items():
                D = C // H
                qkv, dy, y, lse, dqkv, dims = attention_inputs(ex, B, T, C, H)
                bufs = [dy, qkv, y, lse, dqkv]
                over = rows_backward_overrides(D, T)
                for _ in range(5):
                    timed(ex, "attention_rows_backward", bufs, dims, over)
                ms = timed(ex, "attention_rows_backward", bufs, dims, over)
                out["shapes"].setdefault(shape, {})[name] = out["shapes"].get(shape, {}).get(name, []) + [ms]
                print(shape, name, round(ms, 4), flush=True)
    json.dump(out, open(sys.argv[2], "w"), indent=1)


if __name__ == "__main__":
    main()
