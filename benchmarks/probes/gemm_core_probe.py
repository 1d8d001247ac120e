"""Question: how fast can a WGSL GEMM go on this GPU, and which trait of the project's matmul entries
costs the speed between them and PyTorch (the 4096^3 target of 0.8x)?

Every kernel here is a stand-alone, specialised WGSL GEMM (C = A @ B, all row-major, sizes multiples of
the tile: no bounds checks, no generic operand code), generated from a few knobs, so that one run shows
which knob moves the core. Also measured in the same run:
  - `fma_peak`: a WGSL kernel of independent FMA chains in registers (no memory): the FP32 rate the
    Dawn -> Vulkan -> driver path reaches at all on this GPU;
  - the GPU's SM clock while each kernel runs (nvidia-smi, when present), and during PyTorch's GEMM;
  - the project's own matmul_forward (the executor and tile rules), and PyTorch fp32 (TF32 off).

    python3 benchmarks/probes/gemm_core_probe.py dawn OUT.json           # on the GPU machine
    python3 benchmarks/probes/gemm_core_probe.py wgpu-native OUT.json --smoke   # correctness, anywhere
    python3 benchmarks/probes/gemm_core_probe.py dawn OUT.json --third    # the third run's variants
    python3 benchmarks/probes/gemm_core_probe.py dawn OUT.json --bridge   # toward our kernel, trait by trait
    python3 benchmarks/probes/gemm_core_probe.py dawn OUT.json --small    # 4 x 4 outputs per invocation, few-tile shapes

Knobs of `gemm_wgsl`: BM x BN output tile per workgroup, BK k-slice, RM x RN outputs per invocation
(RN a multiple of 4: vec4 accumulators), WX (invocations along x in one 32-wide warp: 0 = plain
row-major invocation order), DB (double-buffered workgroup tiles, one barrier per slice; else two).
Invocation (tx, ty) owns rows ty*4 + g*(BM*4/RM) + 0..3 (g < RM/4) and columns tx*4 + h*(BN*4/RN) + 0..3
(h < RN/4): neighbouring invocations read neighbouring vec4 of the workgroup tiles (no bank conflicts).
"""
import importlib
import json
import subprocess
import sys
import threading
import time

import numpy as np


def gemm_wgsl(BM=128, BN=128, BK=8, RM=8, RN=8, WX=0, DB=True, CHECK=False, PRIV=False,
              STRIDES=False) -> tuple[str, int]:
    """WGSL of one GEMM variant and its invocations per workgroup. The ablation knobs add what the
    project's generic kernels carry: CHECK (bounds tests on every load and store), PRIV (module-scope
    var<private> accumulators), STRIDES (operand addresses from runtime strides in the uniform)."""
    TX, TY = BN // RN, BM // RM
    threads = TX * TY
    AROW, BROW = BM // 4 + 1, BN // 4 + 1  # vec4 per k row of a_s / b_s, plus one of padding
    bufs = 2 if DB else 1
    a_loads = BM * BK // 4  # vec4 loads of A per slice (along k: A is row-major)
    b_loads = BK * BN // 4
    L = []
    w = L.append
    w("struct Dims { M: u32, N: u32, K: u32, pad: u32, sau: u32, sak: u32, sbu: u32, sbk: u32 };")
    w("@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;")
    w("@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;")
    w("@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;")
    w("@group(0) @binding(3) var<uniform> d: Dims;")
    w(f"var<workgroup> a_s: array<vec4<f32>, {bufs * BK * AROW}>;")
    w(f"var<workgroup> b_s: array<vec4<f32>, {bufs * BK * BROW}>;")
    w(f"@compute @workgroup_size({threads})")
    w("fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {")
    if WX:
        w(f"  let lane = tid & 31u; let warp = tid >> 5u;")
        w(f"  let tx = (warp % {TX // WX}u) * {WX}u + lane % {WX}u;")
        w(f"  let ty = (warp / {TX // WX}u) * {32 // WX}u + lane / {WX}u;")
    else:
        w(f"  let tx = tid % {TX}u; let ty = tid / {TX}u;")
    w(f"  let row0 = wg.y * {BM}u; let col0 = wg.x * {BN}u;")
    w("  let K4 = d.K / 4u; let N4 = d.N / 4u;")
    accs = [f"c{i}_{h}" for i in range(RM) for h in range(RN // 4)]
    for a in accs:
        w(f"  {a} = vec4<f32>(0.0);" if PRIV else f"  var {a} = vec4<f32>(0.0);")
    if PRIV:  # module scope, before the entry point
        at = L.index(f"@compute @workgroup_size({threads})")
        L[at:at] = [f"var<private> {a}: vec4<f32>;" for a in accs]
    na = (a_loads + threads - 1) // threads
    nb = (b_loads + threads - 1) // threads

    def load(k0):
        out = []
        for j in range(na):
            e = f"(tid + {j * threads}u)"
            guard = f"if ({e} < {a_loads}u) " if (j + 1) * threads > a_loads else ""
            r, k = f"(row0 + {e} / {BK // 4}u)", f"(({k0}) + ({e} % {BK // 4}u) * 4u)"
            at = f"({r} * d.sau + {k} * d.sak) / 4u" if STRIDES else f"{r} * K4 + {k} / 4u"
            body = f"sa{j} = A[{at}];"
            if CHECK:
                body = f"if ({r} < d.M && {k} < d.K) {{ {body} }} else {{ sa{j} = vec4<f32>(0.0); }}"
            out.append(f"  {guard}{{ {body} }}")
        for j in range(nb):
            e = f"(tid + {j * threads}u)"
            guard = f"if ({e} < {b_loads}u) " if (j + 1) * threads > b_loads else ""
            k, c = f"(({k0}) + {e} / {BN // 4}u)", f"(col0 + ({e} % {BN // 4}u) * 4u)"
            at = f"({k} * d.sbk + {c} * d.sbu) / 4u" if STRIDES else f"{k} * N4 + {c} / 4u"
            body = f"sb{j} = B[{at}];"
            if CHECK:
                body = f"if ({c} < d.N && {k} < d.K) {{ {body} }} else {{ sb{j} = vec4<f32>(0.0); }}"
            out.append(f"  {guard}{{ {body} }}")
        return out

    def store(buf):
        out = []
        for j in range(na):
            e = f"(tid + {j * threads}u)"
            guard = f"if ({e} < {a_loads}u) " if (j + 1) * threads > a_loads else ""
            r, kq = f"({e} / {BK // 4}u)", f"({e} % {BK // 4}u)"
            body = " ".join(f"a_s[{buf} * {BK * AROW}u + ({kq} * 4u + {c}u) * {AROW}u + {r} / 4u][{r} % 4u] = sa{j}.{'xyzw'[c]};"
                            for c in range(4))
            out.append(f"  {guard}{{ {body} }}")
        for j in range(nb):
            e = f"(tid + {j * threads}u)"
            guard = f"if ({e} < {b_loads}u) " if (j + 1) * threads > b_loads else ""
            out.append(f"  {guard}{{ b_s[{buf} * {BK * BROW}u + ({e} / {BN // 4}u) * {BROW}u + {e} % {BN // 4}u] = sb{j}; }}")
        return out

    def compute(buf):
        out = [f"  for (var k = 0u; k < {BK}u; k++) {{"]
        for g in range(RM // 4):
            out.append(f"    let a{g} = a_s[{buf} * {BK * AROW}u + k * {AROW}u + ty + {g * TY}u];")
        for h in range(RN // 4):
            out.append(f"    let b{h} = b_s[{buf} * {BK * BROW}u + k * {BROW}u + tx + {h * TX}u];")
        for i in range(RM):
            for h in range(RN // 4):
                out.append(f"    c{i}_{h} = fma(vec4<f32>(a{i // 4}.{'xyzw'[i % 4]}), b{h}, c{i}_{h});")
        out.append("  }")
        return out

    for j in range(na):
        w(f"  var sa{j} = vec4<f32>(0.0);")
    for j in range(nb):
        w(f"  var sb{j} = vec4<f32>(0.0);")
    w(f"  let slices = d.K / {BK}u;")
    if DB:
        L.extend(load("0u"))
        L.extend(store("0u"))
        w("  workgroupBarrier();")
        w("  for (var t = 0u; t < slices; t++) {")
        w("    let buf = t & 1u;")
        w("    let more = t + 1u < slices;")
        w("    if (more) {")
        L.extend("  " + s for s in load(f"(t + 1u) * {BK}u"))
        w("    }")
        L.extend("  " + s for s in compute("buf"))
        w("    if (more) {")
        L.extend("  " + s for s in store("(buf ^ 1u)"))
        w("    }")
        w("    workgroupBarrier();")
        w("  }")
    else:
        w("  for (var t = 0u; t < slices; t++) {")
        L.extend("  " + s for s in load(f"t * {BK}u"))
        L.extend("  " + s for s in store("0u"))
        w("    workgroupBarrier();")
        L.extend("  " + s for s in compute("0u"))
        w("    workgroupBarrier();")
        w("  }")
    for i in range(RM):
        row = f"row0 + {(i // 4) * (BM * 4 // RM) + i % 4}u + ty * 4u"
        for h in range(RN // 4):
            st = f"C[({row}) * N4 + col0 / 4u + tx + {h * TX}u] = c{i}_{h};"
            if CHECK:
                st = f"if (({row}) < d.M && col0 + (tx + {h * TX}u) * 4u < d.N) {{ {st} }}"
            w("  " + st)
    w("}")
    return "\n".join(L) + "\n", threads


def bridge_wgsl(FUNCS=False, EPI=False, LID2D=False) -> tuple[str, int]:
    """The bridge from the stand-alone kernel (128 x 128 tiles, 8 x 8 outputs, 8-deep slices, two
    buffers) toward the project's matmul_forward_v4, one trait at a time:
      FUNCS: loads and tile stores through functions of a run-time Operand (strides, count, k_fast),
             bounds-tested, as matmul_tiles.wgsl / matmul_vec4.wgsl do them;
      EPI:   module-scope accumulators, read back through a switch (result()) and stored as scalars
             with a bounds test each, as store_out2 does;
      LID2D: a 16 x 16 workgroup (local_invocation_id) instead of 256 x 1.
    Same bindings as gemm_wgsl (C as scalars with EPI)."""
    BM = BN = 128
    BK, TX, TY, threads = 8, 16, 16, 256
    AROW = BROW = 33
    L = []
    w = L.append
    w("struct Dims { M: u32, N: u32, K: u32, pad: u32, sau: u32, sak: u32, sbu: u32, sbk: u32 };")
    w("@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;")
    w("@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;")
    w(f"@group(0) @binding(2) var<storage, read_write> C: array<{'f32' if EPI else 'vec4<f32>'}>;")
    w("@group(0) @binding(3) var<uniform> d: Dims;")
    w(f"var<workgroup> a_s: array<vec4<f32>, {2 * BK * AROW}>;")
    w(f"var<workgroup> b_s: array<vec4<f32>, {2 * BK * BROW}>;")
    accs = [f"c{i}_{h}" for i in range(8) for h in range(2)]
    if EPI:
        L += [f"var<private> {a}: vec4<f32>;" for a in accs]
        w("fn result(j: u32) -> vec4<f32> {\n  switch (j) {")
        L += [f"    case {j}u: {{ return {a}; }}" for j, a in enumerate(accs[:-1])]
        w(f"    default: {{ return {accs[-1]}; }}\n  }}\n}}")
    if FUNCS:
        w("""struct Operand { u_stride: u32, k_stride: u32, u_count: u32, k_fast: bool };
fn operand(u_stride: u32, k_stride: u32, u_count: u32) -> Operand {
  return Operand(u_stride, k_stride, u_count, k_stride == 1u);
}
fn origin(op: Operand, e: u32, t: u32) -> vec2<u32> {
  if (op.k_fast) { return vec2<u32>(e / 2u, (e % 2u) * 4u); }
  return vec2<u32>((e % (t / 4u)) * 4u, e / (t / 4u));
}
fn fetch_a(op: Operand, u: u32, k: u32, I: u32) -> vec4<f32> {
  if (k >= I || u >= op.u_count) { return vec4<f32>(0.0); }
  return A[(u * op.u_stride + k * op.k_stride) / 4u];
}
fn fetch_b(op: Operand, u: u32, k: u32, I: u32) -> vec4<f32> {
  if (k >= I || u >= op.u_count) { return vec4<f32>(0.0); }
  return B[(u * op.u_stride + k * op.k_stride) / 4u];
}
fn put_a(v: vec4<f32>, base: u32, o: vec2<u32>, k_fast: bool) {
  if (k_fast) {
    for (var c = 0u; c < 4u; c++) { a_s[base + (o.y + c) * 33u + o.x / 4u][o.x % 4u] = v[c]; }
  } else { a_s[base + o.y * 33u + o.x / 4u] = v; }
}
fn put_b(v: vec4<f32>, base: u32, o: vec2<u32>, k_fast: bool) {
  if (k_fast) {
    for (var c = 0u; c < 4u; c++) { b_s[base + (o.y + c) * 33u + o.x / 4u][o.x % 4u] = v[c]; }
  } else { b_s[base + o.y * 33u + o.x / 4u] = v; }
}""")
    if LID2D:
        w(f"@compute @workgroup_size({TX}, {TY})")
        w("fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {")
        w(f"  let tx = lid.x; let ty = lid.y; let tid = ty * {TX}u + tx;")
    else:
        w(f"@compute @workgroup_size({threads})")
        w("fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {")
        w(f"  let tx = tid % {TX}u; let ty = tid / {TX}u;")
    w(f"  let row0 = wg.y * {BM}u; let col0 = wg.x * {BN}u;")
    w("  let K4 = d.K / 4u; let N4 = d.N / 4u;")
    if FUNCS:
        w("  let opA = operand(d.K, 1u, d.M); let opB = operand(1u, d.N, d.N);")
    for a in accs:
        w(f"  {a} = vec4<f32>(0.0);" if EPI else f"  var {a} = vec4<f32>(0.0);")
    w("  var sa = vec4<f32>(0.0); var sb = vec4<f32>(0.0);")

    def load(k0):
        if FUNCS:
            return [f"  {{ let o = origin(opA, tid, {BM}u); sa = fetch_a(opA, row0 + o.x, ({k0}) + o.y, d.K); }}",
                    f"  {{ let o = origin(opB, tid, {BN}u); sb = fetch_b(opB, col0 + o.x, ({k0}) + o.y, d.K); }}"]
        return [f"  sa = A[(row0 + tid / 2u) * K4 + ({k0}) / 4u + tid % 2u];",
                f"  sb = B[(({k0}) + tid / 32u) * N4 + col0 / 4u + tid % 32u];"]

    def store(buf):
        if FUNCS:
            return [f"  put_a(sa, ({buf}) * {BK * AROW}u, origin(opA, tid, {BM}u), opA.k_fast);",
                    f"  put_b(sb, ({buf}) * {BK * BROW}u, origin(opB, tid, {BN}u), opB.k_fast);"]
        body = " ".join(f"a_s[({buf}) * {BK * AROW}u + ((tid % 2u) * 4u + {c}u) * {AROW}u + (tid / 2u) / 4u]"
                        f"[(tid / 2u) % 4u] = sa.{'xyzw'[c]};" for c in range(4))
        return ["  " + body, f"  b_s[({buf}) * {BK * BROW}u + (tid / 32u) * {BROW}u + tid % 32u] = sb;"]

    def compute(buf):
        out = [f"  for (var k = 0u; k < {BK}u; k++) {{"]
        for g in range(2):
            out.append(f"    let a{g} = a_s[{buf} * {BK * AROW}u + k * {AROW}u + ty + {g * TY}u];")
        for h in range(2):
            out.append(f"    let b{h} = b_s[{buf} * {BK * BROW}u + k * {BROW}u + tx + {h * TX}u];")
        for i in range(8):
            for h in range(2):
                out.append(f"    c{i}_{h} = fma(vec4<f32>(a{i // 4}.{'xyzw'[i % 4]}), b{h}, c{i}_{h});")
        out.append("  }")
        return out

    w(f"  let slices = (d.K + {BK - 1}u) / {BK}u;")
    L.extend(load("0u"))
    L.extend(store("0u"))
    w("  workgroupBarrier();")
    w("  for (var t = 0u; t < slices; t++) {")
    w("    let more = t + 1u < slices;")
    w("    if (more) {")
    L.extend("  " + x for x in load(f"(t + 1u) * {BK}u"))
    w("    }")
    L.extend("  " + x for x in compute("(t & 1u)"))
    w("    if (more) {")
    L.extend("  " + x for x in store("((t + 1u) & 1u)"))
    w("    }")
    w("    workgroupBarrier();")
    w("  }")
    if EPI:
        w("""  for (var j = 0u; j < 16u; j++) {
    let i = j / 2u; let h = j % 2u;
    let r = row0 + ty * 4u + (i % 4u) + (i / 4u) * 64u;
    let c = col0 + tx * 4u + h * 64u;
    let v = result(j);
    for (var e = 0u; e < 4u; e++) {
      if (r < d.M && c + e < d.N) { C[r * d.N + c + e] = v[e]; }
    }
  }""")
    else:
        for i in range(8):
            row = f"row0 + {(i // 4) * 64 + i % 4}u + ty * 4u"
            for h in range(2):
                w(f"  C[({row}) * N4 + col0 / 4u + tx + {h * TX}u] = c{i}_{h};")
    w("}")
    return "\n".join(L) + "\n", threads


FMA_PEAK = """
@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(1) var<uniform> p: vec4<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let m = vec4<f32>(p.x); let c = vec4<f32>(p.y);
  var a0 = vec4<f32>(f32(g.x)); var a1 = a0 + 1.0; var a2 = a0 + 2.0; var a3 = a0 + 3.0;
  var a4 = a0 + 4.0; var a5 = a0 + 5.0; var a6 = a0 + 6.0; var a7 = a0 + 7.0;
  for (var i = 0u; i < u32(p.z); i++) {
""" + "".join("    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);\n"
              "    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);\n"
              for _ in range(4)) + """  }
  out[g.x] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}
"""


class Clock:
    """Samples the SM clock with nvidia-smi in the background (none when it is missing)."""

    def __init__(self):
        self.samples = []
        try:
            self.p = subprocess.Popen(["nvidia-smi", "--query-gpu=clocks.sm,clocks.max.sm,power.draw,pstate",
                                       "--format=csv,noheader,nounits", "-lms", "50"],
                                      stdout=subprocess.PIPE, text=True)
        except OSError:
            self.p = None
            return
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.samples.append((time.perf_counter(), line.strip()))

    def during(self, t0, t1):
        rows = [s.split(", ") for t, s in self.samples if t0 <= t <= t1]
        if not rows:
            return None
        sm = sorted(float(r[0]) for r in rows)
        return {"sm_mhz_median": sm[len(sm) // 2], "sm_mhz_max_seen": sm[-1], "max_mhz": rows[0][1],
                "power_w_max": max(float(r[2]) for r in rows), "pstate": rows[-1][3], "samples": len(rows)}


class Raw:
    def __init__(self, engine):
        self.wgpu = importlib.import_module({"dawn": "wgpudawn", "wgpu-native": "wgpu"}[engine])
        ad = self.wgpu.gpu.request_adapter_sync(power_preference="high-performance")
        lim = ad.limits
        want = {k: lim[k] for k in ("max-storage-buffer-binding-size", "max-buffer-size",
                                    "max-compute-workgroup-storage-size", "max-compute-invocations-per-workgroup",
                                    "max-compute-workgroup-size-x") if k in lim}
        self.info = {k: dict(ad.info).get(k) for k in ("vendor", "device", "backend_type", "adapter_type",
                                                      "description", "driver")}
        self.info["features"] = sorted(str(f) for f in ad.features)
        self.info["limits"] = want
        self.dev = ad.request_device_sync(required_limits=want)

    def buf(self, data=None, size=0, uniform=False):
        U = self.wgpu.BufferUsage
        usage = (U.UNIFORM if uniform else U.STORAGE | U.COPY_SRC) | U.COPY_DST
        if data is not None:
            return self.dev.create_buffer_with_data(data=data, usage=usage)
        return self.dev.create_buffer(size=size, usage=usage)

    def pipeline(self, code, bufs):
        sm = self.dev.create_shader_module(code=code)
        pl = self.dev.create_compute_pipeline(layout="auto", compute={"module": sm, "entry_point": "main"})
        bg = self.dev.create_bind_group(layout=pl.get_bind_group_layout(0),
                                        entries=[{"binding": i, "resource": {"buffer": b}} for i, b in enumerate(bufs)])
        return pl, bg

    def run(self, pl, bg, grid, reps, sync_buf):
        enc = self.dev.create_command_encoder()
        p = enc.begin_compute_pass()
        p.set_pipeline(pl)
        p.set_bind_group(0, bg)
        for _ in range(reps):
            p.dispatch_workgroups(*grid)
        p.end()
        self.dev.queue.submit([enc.finish()])
        self.dev.queue.read_buffer(sync_buf, size=16)

    def timed(self, pl, bg, grid, reps, sync_buf, clock):
        self.run(pl, bg, grid, 1, sync_buf)
        runs = []
        t0 = time.perf_counter()
        for _ in range(3):
            t = time.perf_counter()
            self.run(pl, bg, grid, reps, sync_buf)
            runs.append((time.perf_counter() - t) / reps)
        t1 = time.perf_counter()
        return sorted(runs)[1], (clock.during(t0, t1) if clock else None)


VARIANTS_FIRST_RUN = {
    # name: knobs of gemm_wgsl
    "t128_r8x8_k8_db": {},
    "t128_r8x8_k8_db_wx8": {"WX": 8},
    "t128_r8x8_k8_db_wx4": {"WX": 4},
    "t128_r8x8_k16_db": {"BK": 16},
    "t128_r8x8_k16_db_wx8": {"BK": 16, "WX": 8},
    "t128_r8x8_k8_single": {"DB": False},
    "t128_r8x8_k16_single": {"BK": 16, "DB": False},
    "t128x64_r8x8_k8_db": {"BN": 64},
    "t64_r8x8_k8_db": {"BM": 64, "BN": 64},
    "t64_r4x4_k16_db": {"BM": 64, "BN": 64, "RM": 4, "RN": 4, "BK": 16},
    "t128_r8x4_k8_db": {"RN": 4},
    "t128_r4x8_k8_db": {"RM": 4},
    "t256x128_r8x8_k8_db": {"BM": 256},
    "t128x256_r8x8_k8_db": {"BN": 256},
    "t128_r16x8_k8_db": {"RM": 16},
}
# Second run (after the first showed k16 single-buffered best, and the generic code's cost):
ALL3 = {"CHECK": True, "PRIV": True, "STRIDES": True}
VARIANTS = {
    "t128_r8x8_k8_db": {},
    "t128_r8x8_k8_db_check": {"CHECK": True},
    "t128_r8x8_k8_db_priv": {"PRIV": True},
    "t128_r8x8_k8_db_strides": {"STRIDES": True},
    "t128_r8x8_k8_db_all3": ALL3,
    "t128_r8x8_k16_single": {"BK": 16, "DB": False},
    "t128_r8x8_k16_single_wx8": {"BK": 16, "DB": False, "WX": 8},
    "t128_r8x8_k16_single_all3": {"BK": 16, "DB": False, **ALL3},
    "t128_r8x8_k32_single": {"BK": 32, "DB": False},
    "t128_r16x8_k16_single": {"BK": 16, "DB": False, "RM": 16},
    "t128x256_r8x8_k16_single": {"BK": 16, "DB": False, "BN": 256},
    "t64_r8x8_k16_single": {"BK": 16, "DB": False, "BM": 64, "BN": 64},
    "t64x128_r8x8_k16_single": {"BK": 16, "DB": False, "BM": 64},
    "t128x64_r8x8_k16_single": {"BK": 16, "DB": False, "BN": 64},
}
SHAPES = [(4096, 4096, 4096), (2048, 1536, 512), (2048, 2048, 512), (2048, 512, 2048)]  # (M, N, K)
# Fourth run (--bridge): from the stand-alone kernel toward ours, one trait at a time (bridge_wgsl).
VARIANTS_BRIDGE = {
    "t128_r8x8_k8_db": {},
    "bridge_none": {"bridge": {}},
    "bridge_funcs": {"bridge": {"FUNCS": True}},
    "bridge_epi": {"bridge": {"EPI": True}},
    "bridge_lid2d": {"bridge": {"LID2D": True}},
    "bridge_funcs_epi": {"bridge": {"FUNCS": True, "EPI": True}},
    "bridge_all": {"bridge": {"FUNCS": True, "EPI": True, "LID2D": True}},
}
# Third run (--third, 4096^3 only): bigger register tiles with the one-buffer loop.
VARIANTS_THIRD = {
    "t128_r8x8_k16_single": {"BK": 16, "DB": False},
    "t128_r16x8_k16_single": {"BK": 16, "DB": False, "RM": 16},
    "t128_r16x8_k8_single": {"BK": 8, "DB": False, "RM": 16},
    "t128_r16x8_k16_single_wx8": {"BK": 16, "DB": False, "RM": 16, "WX": 8},
    "t256x128_r16x8_k16_single": {"BK": 16, "DB": False, "RM": 16, "BM": 256},
    "t128x256_r8x16_k16_single": {"BK": 16, "DB": False, "RN": 16, "BN": 256},
    "t128_r8x16_k16_single": {"BK": 16, "DB": False, "RN": 16},
    "t256x128_r16x8_k8_single": {"BK": 8, "DB": False, "RM": 16, "BM": 256},
    "t128_r16x8_k16_db": {"BK": 16, "RM": 16},
    "t128_r16x8_k16_single_check": {"BK": 16, "DB": False, "RM": 16, "CHECK": True, "STRIDES": True},
}


# Fifth run (--small): shapes with few output tiles (the long-K fc_proj, proj, the medium model's),
# where 8 x 8 outputs per invocation leave ~4 warps per SM; 4 x 4 outputs per invocation give 4x more.
VARIANTS_SMALL = {
    "t64_r8x8_k8_db": {"BM": 64, "BN": 64},
    "t64_r8x8_k16_single": {"BM": 64, "BN": 64, "BK": 16, "DB": False},
    "t64_r4x4_k8_db": {"BM": 64, "BN": 64, "RM": 4, "RN": 4},
    "t64_r4x4_k16_db": {"BM": 64, "BN": 64, "RM": 4, "RN": 4, "BK": 16},
    "t64_r4x4_k16_single": {"BM": 64, "BN": 64, "RM": 4, "RN": 4, "BK": 16, "DB": False},
    "t32_r4x4_k8_db": {"BM": 32, "BN": 32, "RM": 4, "RN": 4},
    "t64x32_r4x4_k8_db": {"BM": 64, "BN": 32, "RM": 4, "RN": 4},
    "t32x64_r4x4_k8_db": {"BM": 32, "BN": 64, "RM": 4, "RN": 4},
    "t64_r8x4_k8_db": {"BM": 64, "BN": 64, "RN": 4},
    "t128x64_r8x4_k8_db": {"BM": 128, "BN": 64, "RN": 4},
    "t128_r8x8_k8_db": {},
}
SHAPES_SMALL = [(2048, 512, 2048), (2048, 512, 512), (2048, 1536, 512), (2048, 1024, 512), (2048, 2048, 512),
                (1024, 256, 1024), (1024, 256, 256), (1024, 768, 256), (1024, 1024, 256), (512, 128, 512),
                (512, 512, 128)]  # (M, N, K): large fc_proj, proj, qkv, lm_head, fc; medium ...; small ...


def main():
    engine, out_path = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    n = 256 if smoke else 4096
    reps = 2 if smoke else 20
    raw = Raw(engine)
    clock = None if smoke else Clock()
    res = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "engine": engine, "adapter": raw.info, "n": n,
           "variants": {}}
    print(json.dumps(raw.info), flush=True)
    # FMA peak: flops = invocations * iterations * 4 unrolled * 8 vec4 * 4 lanes * 2
    iters = 8 if smoke else 512
    wgs = 64 if smoke else 4096
    out = raw.buf(size=wgs * 256 * 16)
    par = raw.buf(np.array([0.9999, 1e-4, iters, 0], np.float32), uniform=True)
    pl, bg = raw.pipeline(FMA_PEAK, [out, par])
    for _ in range(2):
        s, clk = raw.timed(pl, bg, (wgs, 1, 1), 3, out, clock)
        res["fma_peak"] = {"tflops": wgs * 256 * iters * 4 * 8 * 4 * 2 / s / 1e12, "ms": s * 1e3, "clock": clk}
    print("fma_peak", json.dumps(res["fma_peak"]), flush=True)
    if "--third" in sys.argv:
        VARIANTS.clear()
        VARIANTS.update(VARIANTS_THIRD)
    if "--bridge" in sys.argv:
        VARIANTS.clear()
        VARIANTS.update(VARIANTS_BRIDGE)
    if "--small" in sys.argv:
        VARIANTS.clear()
        VARIANTS.update(VARIANTS_SMALL)
        if not smoke:
            SHAPES[:] = SHAPES_SMALL
    shapes = [(256, 256, 256), (256, 128, 64)] if smoke else SHAPES[:1] if "--third" in sys.argv else SHAPES[:2] if "--bridge" in sys.argv else SHAPES
    for M, N, K in shapes:
        res["variants"][f"{M}x{N}x{K}"] = gemm_shape(raw, clock, M, N, K, reps if M * N * K > 2 ** 33 else 50)
    if not smoke and "--small" in sys.argv:
        res["torch"] = {f"{M}x{N}x{K}": torch_gemm(M, N, K, clock) for M, N, K in SHAPES}
    elif not smoke and "--third" not in sys.argv and "--bridge" not in sys.argv:
        res["project"] = project_forward(engine, clock)
        res["torch"] = {f"{M}x{N}x{K}": torch_gemm(M, N, K, clock) for M, N, K in SHAPES}
    json.dump(res, open(out_path, "w"), indent=1)


def gemm_shape(raw, clock, M, N, K, reps):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((M, K), dtype=np.float32)
    B = rng.standard_normal((K, N), dtype=np.float32)
    ba, bb, bc = raw.buf(A), raw.buf(B), raw.buf(size=M * N * 4)
    dims = raw.buf(np.array([M, N, K, 0, K, 1, 1, N], np.uint32), uniform=True)
    ref = A[:64].astype(np.float64) @ B.astype(np.float64)
    out = {}
    for name in list(VARIANTS) + [next(iter(VARIANTS))]:
        knobs = VARIANTS[name]
        BM, BN = knobs.get("BM", 128), knobs.get("BN", 128)
        if M % BM or N % BN:
            continue
        try:
            code, threads = bridge_wgsl(**knobs["bridge"]) if "bridge" in knobs else gemm_wgsl(**knobs)
            pl, bg = raw.pipeline(code, [ba, bb, bc, dims])
            s, clk = raw.timed(pl, bg, (N // BN, M // BM, 1), reps, bc, clock)
            got = np.frombuffer(raw.dev.queue.read_buffer(bc, size=64 * N * 4), np.float32).reshape(64, N)
            err = float(np.abs(got - ref).max() / np.abs(ref).max())
            row = {"tflops": 2 * M * N * K / s / 1e12, "ms": s * 1e3, "rel_err": err, "threads": threads,
                   "clock": clk}
        except Exception as e:  # a variant the device refuses (limits) is reported, not fatal
            row = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        key = name if name not in out else name + " (again)"
        out[key] = row
        raw.dev.queue.write_buffer(bc, 0, np.zeros(64 * N, np.float32))
        print(f"{M}x{N}x{K}", key, json.dumps(row), flush=True)
    return out


def project_forward(engine, clock):
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from shader_dirs_probe import time_forward
    from pyscript_app.gpu.native import open_device
    ex = open_device(engine)
    out = {}
    for N, K, M, reps in [(4096, 4096, 4096, 20), (2048, 512, 1536, 50), (2048, 512, 2048, 50),
                          (2048, 2048, 512, 50)]:
        t0 = time.perf_counter()
        out[f"{N}x{K}x{M}"] = time_forward(ex, N, K, M, reps, {})
        out[f"{N}x{K}x{M}"]["clock"] = clock.during(t0, time.perf_counter()) if clock else None
        print("project", N, K, M, json.dumps(out[f"{N}x{K}x{M}"]), flush=True)
    return out


def torch_gemm(M, N, K, clock):
    try:
        import torch
    except ImportError:
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(M, K, device="cuda")
    b = torch.randn(K, N, device="cuda")
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(100):
        a @ b
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    out = {"tflops": 2 * M * N * K * 100 / (t1 - t0) / 1e12, "clock": clock.during(t0, t1) if clock else None}
    print("torch", json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
