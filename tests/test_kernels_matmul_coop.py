"""shaders/matmul_coop.wgsl through Dawn's shader compiler (Tint) on its Null backend, which lists
subgroup matrices and f16 but runs nothing: every layout and epilogue compiles, a block that fits
WebGPU's default 16 KiB of workgroup memory builds a pipeline, and for the blocks the rules pick the
workgroup memory Dawn counts is coop_rules.coop_workgroup_bytes. The kernel's numbers are checked on
a GPU that runs it: `tabgpt bench --precision mixed` gates on gpu/mixed_check.py."""

import json
import os
import subprocess
import sys

from pyscript_app.gpu.coop_rules import COOP_BIG, COOP_SMALL, coop_workgroup_bytes
from pyscript_app.gpu.registry import COOP_CAUSAL, COOP_EPILOGUES, shader_source

SCRIPT = r"""
import json, re, sys
from wgpudawn.backends.dawn import extras
extras.set_instance_extras(enable_toggles=["allow_unsafe_apis"])
import wgpudawn
adapter = wgpudawn.gpu.request_adapter_sync()
device = adapter.request_device_sync(required_features=["chromium-experimental-subgroup-matrix", "shader-f16"])
module = device.create_shader_module(code=sys.stdin.read())
out = []
for constants in json.loads(sys.argv[1]):
    try:
        device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "matmul_coop",
                                                              "constants": constants})
        out.append("built")
    except Exception as e:
        m = re.search(r"workgroup storage \((\d+) bytes\)", str(e))
        out.append(int(m.group(1)) if m else str(e)[:300])
print(json.dumps(out))
"""


def _compile(configs):
    env = {**os.environ, "WGPU_BACKEND_TYPE": "Null"}
    p = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(configs)], input=shader_source("matmul_coop.wgsl"),
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_every_layout_and_epilogue_compiles_and_the_rules_count_its_workgroup_memory():
    fits = {"WY": 2, "WX": 2, "RT": 1, "CT": 1, "BK": 16}  # 4 subgroups: Null's subgroups are up to 128 wide
    configs, want = [], []
    for a_t, b_t in ((0, 0), (0, 1), (1, 0)):
        for epi in COOP_EPILOGUES.values():
            configs.append({**fits, "A_T": a_t, "B_T": b_t, "EPI": epi})
            want.append("built")
        configs.append({**fits, "A_T": a_t, "B_T": b_t, "KSPLIT": 4})  # k-runs into parts
        want.append("built")
        configs.append({**fits, "A_T": a_t, "B_T": b_t, "EPI": 2, "STRIDED": 1})  # strided, e as y
        want.append("built")
        for causal in COOP_CAUSAL.values():  # the attention's causal products
            configs.append({**fits, "A_T": a_t, "B_T": b_t, "CAUSAL": causal, "STRIDED": 1})
            want.append("built")
        for block in (COOP_SMALL, COOP_BIG):
            configs.append({**block, "A_T": a_t, "B_T": b_t})
            want.append(coop_workgroup_bytes(block, bool(a_t), bool(b_t)))
    assert coop_workgroup_bytes(fits, False, False) <= 16384
    assert all(isinstance(w, str) or w > 16384 for w in want)  # so Dawn reports the count
    assert _compile(configs) == want
