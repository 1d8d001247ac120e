"""Attention forward unrolled probe (an experiment): is attention_rows_forward slow because its row arrays
(`var q: array<vec4<f32>, 16>` indexed by loops that break at D/4) are not kept in registers? A variant
with the same math and the same bindings, written out for D = 64 with 16 named vec4 for q and for the
accumulator (generated here; no arrays, no loops over columns), against the committed kernel at the medium
and large shapes (B=8, full context), each checked against the committed kernel's y.

    python3 benchmarks/probes/attention_unrolled_probe.py dawn|wgpu-native OUT.json"""
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, ".")
sys.path.insert(0, "benchmarks/probes")
from attention_probe_timing import timed  # noqa: E402
from pyscript_app.gpu.attention_ops import rows_forward_overrides  # noqa: E402
from pyscript_app.gpu.executor import run_sync  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402
from pyscript_app.gpu.registry import shader_dir  # noqa: E402

SHAPES = {"medium": (8, 128, 256, 8), "large": (8, 256, 512, 8)}
D4 = 16


def unrolled() -> str:
    R = range(D4)
    L = ["override D: u32 = 64u;", "override ROWS: u32 = 64u;", "override KT: u32 = 16u;",
         "override KT_VEC4: u32 = KT * (D / 4u);", "const NEG_BIG: f32 = -3.0e38;",
         "struct AttentionParams { B: u32, T: u32, C: u32, H: u32, };",
         "@group(0) @binding(0) var<storage, read> qkv: array<vec4<f32>>;",
         "@group(0) @binding(1) var<storage, read_write> y_out: array<vec4<f32>>;",
         "@group(0) @binding(2) var<storage, read_write> lse_out: array<f32>;",
         "@group(0) @binding(3) var<uniform> p: AttentionParams;",
         "var<workgroup> k_sh: array<vec4<f32>, KT_VEC4>;", "var<workgroup> v_sh: array<vec4<f32>, KT_VEC4>;",
         "@compute @workgroup_size(ROWS)",
         "fn attention_rows_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) r: u32) {",
         "  let D4 = 16u; let T = p.T; let C4 = p.C / 4u; let h = wid.y; let b = wid.z;",
         "  let t0 = wid.x * ROWS; let t = t0 + r; let row_ok = t < T; let scale = inverseSqrt(f32(D));",
         "  let qb = (b * T + min(t, T - 1u)) * 3u * C4 + h * D4;"]
    L += [f"  let q{i} = qkv[qb + {i}u] * scale; var a{i} = vec4<f32>(0.0);" for i in R]
    L += ["  var m = NEG_BIG; var l = 0.0;", "  let n_keys = min(T, t0 + ROWS);",
          "  for (var s0 = 0u; s0 < n_keys; s0 += KT) {", "    workgroupBarrier();",
          "    for (var e = r; e < KT * D4; e += ROWS) {",
          "      let key = s0 + e / D4; let c = e % D4;",
          "      var kv = vec4<f32>(0.0); var vv = vec4<f32>(0.0);",
          "      if (key < T) { let base = (b * T + key) * 3u * C4 + h * D4 + c; kv = qkv[base + C4]; vv = qkv[base + 2u * C4]; }",
          "      k_sh[e] = kv; v_sh[e] = vv;", "    }", "    workgroupBarrier();",
          "    let visible = min(KT, select(0u, t + 1u - s0, t >= s0));",
          "    for (var j0 = 0u; j0 < visible; j0 += 4u) {",
          "      let k0 = j0 * D4; let k1 = min(j0 + 1u, KT - 1u) * D4; let k2 = min(j0 + 2u, KT - 1u) * D4; let k3 = min(j0 + 3u, KT - 1u) * D4;",
          "      var d0 = vec4<f32>(0.0); var d1 = vec4<f32>(0.0); var d2 = vec4<f32>(0.0); var d3 = vec4<f32>(0.0);"]
    for i in R:
        L.append(f"      d0 = fma(q{i}, k_sh[k0 + {i}u], d0); d1 = fma(q{i}, k_sh[k1 + {i}u], d1); "
                 f"d2 = fma(q{i}, k_sh[k2 + {i}u], d2); d3 = fma(q{i}, k_sh[k3 + {i}u], d3);")
    L += ["      let one = vec4<f32>(1.0);",
          "      let seen = vec4<u32>(j0, j0 + 1u, j0 + 2u, j0 + 3u) < vec4<u32>(visible);",
          "      let s4 = select(vec4<f32>(NEG_BIG), vec4<f32>(dot(d0, one), dot(d1, one), dot(d2, one), dot(d3, one)), seen);",
          "      let m_new = max(m, max(max(s4.x, s4.y), max(s4.z, s4.w)));",
          "      let alpha = exp(m - m_new); let p4 = exp(s4 - m_new);",
          "      l = l * alpha + p4.x + p4.y + p4.z + p4.w;"]
    for i in R:
        L.append(f"      a{i} = fma(vec4<f32>(p4.w), v_sh[k3 + {i}u], fma(vec4<f32>(p4.z), v_sh[k2 + {i}u], "
                 f"fma(vec4<f32>(p4.y), v_sh[k1 + {i}u], fma(vec4<f32>(p4.x), v_sh[k0 + {i}u], a{i} * alpha))));")
    L += ["      m = m_new;", "    }", "  }", "  if (!row_ok) { return; }", "  let inv_l = 1.0 / l;",
          "  let yb = (b * T + t) * C4 + h * D4;"]
    L += [f"  y_out[yb + {i}u] = a{i} * inv_l;" for i in R]
    L += ["  lse_out[(b * p.H + h) * T + t] = m + log(l);", "}"]
    return "\n".join(L) + "\n"


def main():
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "shapes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "unrolled"
        shutil.copytree(shader_dir(), d)
        (d / "attention_rows.wgsl").write_text(unrolled())
        exs = {"committed": open_device(sys.argv[1]), "unrolled": open_device(sys.argv[1], shader_dir=d)}
        for shape, (B, T, C, H) in SHAPES.items():
            ref = None
            for name in ("committed", "unrolled", "committed", "unrolled"):
                ex = exs[name]
                r = np.random.default_rng(0)
                qkv = ex.upload((r.standard_normal(B * T * 3 * C) * 1.5).astype(np.float32).tobytes())
                y, lse = ex.alloc(4 * B * T * C), ex.alloc(4 * B * H * T)
                dims = {"B": B, "T": T, "C": C, "H": H}
                over = rows_forward_overrides(C // H, T)
                ex.dispatch("attention_rows_forward", [qkv, y, lse], dims, overrides=over)
                got = np.frombuffer(run_sync(ex.read(y)), np.float32).copy()
                ref = got if ref is None else ref
                for _ in range(5):
                    timed(ex, "attention_rows_forward", [qkv, y, lse], dims, over)
                ms = timed(ex, "attention_rows_forward", [qkv, y, lse], dims, over)
                row = out["shapes"].setdefault(shape, {}).setdefault(name, [])
                row.append({"ms": ms, "max_abs_diff": float(np.abs(got - ref).max())})
                print(shape, name, row[-1], flush=True)
    json.dump(out, open(sys.argv[2], "w"), indent=1)


main()
