"""Question: what in the staging (global loads into registers, stores into workgroup memory, one barrier
per k-slice) costs the GEMMs their speed, and which restructuring wins it back? gemm_ceiling_probe found
the inner loops far faster than the whole GEMMs on an H100: f32 FMAs on operands read from workgroup
memory 49 TFLOP/s against 36 for the GEMM; subgroup-matrix loads plus multiplies 584 against 25-66.

    python3 benchmarks/probes/gemm_staging_probe.py OUT.json           # on the GPU
    python3 benchmarks/probes/gemm_staging_probe.py OUT.json --check   # the f32 kernels' numbers at 256^3,
                                                                      # wgpu-native on any adapter

f32 (a stand-alone GEMM of the project's design: 128 x 128 tiles, 8 x 8 outputs per invocation in two
4 x 4 quads per dimension, k-major vec4 tiles in workgroup memory, A and B row-major), knobs of
`fma_gemm`:
  TK      the k-slice (8, or 16);
  SPLIT   (TK 16) the next slice's loads in two halves, each stored after half of the slice's k-steps:
          no more staging registers than TK 8, half the barriers;
  UNROLL  the k-steps written out with constant offsets;
  PAIR    two slices per loop iteration, each on a constant buffer;
  PAIRLOOP the same written as an inner loop of two rounds (buffer = the inner loop's counter), as the
          project's kernels would carry it;
and two ablations that give wrong results and only time a part: NOGLOBAL (every slice loads the first
slice's addresses: the loads hit the caches) and NOBAR (no barrier in the loop).
Matrix units: shaders/matmul_coop.wgsl itself on several blocks, and the ablations NOGLOBAL, NOBAR and
NOSTAGE (no next-slice loads or stores: the first slice multiplied again and again), made by editing its
text. Each kernel at 4096^3, timed in interleaved rounds after a warm-up; correct kernels are checked on
their first rows against numpy."""
import json
import os
import re
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from coop_staged_probe import open_dawn  # noqa: E402
from gemm_ceiling_probe import dispatcher, first_rows_error  # noqa: E402

N = 4096
ROUNDS = 3
TARGET_S = 0.05


def fma_gemm(TK=8, SPLIT=False, UNROLL=False, PAIR=False, PAIRLOOP=False, NOGLOBAL=False, NOBAR=False) -> str:
    """WGSL of one f32 variant: C (M,N) = A (M,K) @ B (K,N), all row-major, sizes multiples of 128 and
    TK. 256 invocations; (tx, ty) owns rows ty*4 + (0..3, 64..67), columns tx*4 + (0..3, 64..67).
    Bindings: 0 A, 1 B (vec4, read), 2 C (vec4), 3 dims (M, N, K)."""
    row4 = 33
    loads = TK // 8  # vec4 of A and of B per invocation per slice
    L = ["@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;",
         "@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;",
         "@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;",
         "@group(0) @binding(3) var<uniform> dims: vec4<u32>;",
         f"var<workgroup> a_s: array<vec4<f32>, {2 * TK * row4}>;",
         f"var<workgroup> b_s: array<vec4<f32>, {2 * TK * row4}>;",
         "@compute @workgroup_size(256)",
         "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {",
         "  let tx = tid % 16u; let ty = tid / 16u;",
         "  let row0 = wg.y * 128u; let col0 = wg.x * 128u;",
         "  let K4 = dims.z / 4u; let N4 = dims.y / 4u;"]
    accs = [f"c{i}{h}" for i in range(8) for h in "ab"]
    L += [f"  var {c} = vec4<f32>(0.0);" for c in accs]
    L += [f"  var sa{j} = vec4<f32>(0.0); var sb{j} = vec4<f32>(0.0);" for j in range(loads)]

    def load(j, k0):  # the j-th vec4 of A and of B of the slice at k0
        e = f"(tid + {j * 256}u)"
        k0 = "0u" if NOGLOBAL else k0
        return [f"  sa{j} = A[(row0 + {e} / {TK // 4}u) * K4 + ({k0}) / 4u + {e} % {TK // 4}u];",
                f"  sb{j} = B[(({k0}) + {e} / 32u) * N4 + col0 / 4u + {e} % 32u];"]

    def store(j, buf):
        e = f"(tid + {j * 256}u)"
        r, kq = f"({e} / {TK // 4}u)", f"({e} % {TK // 4}u)"
        out = [f"  a_s[{buf} * {TK * row4}u + ({kq} * 4u + {c}u) * {row4}u + {r} / 4u][{r} % 4u] = sa{j}.{'xyzw'[c]};"
               for c in range(4)]
        out.append(f"  b_s[{buf} * {TK * row4}u + ({e} / 32u) * {row4}u + {e} % 32u] = sb{j};")
        return out

    def compute(buf, ks):
        out = []
        if UNROLL:
            for k in ks:
                base = f"{buf} * {TK * row4}u + {k * row4}u"
                out += [f"  {{ let a0 = a_s[{base} + ty]; let a1 = a_s[{base} + 16u + ty];",
                        f"    let b0 = b_s[{base} + tx]; let b1 = b_s[{base} + 16u + tx];"]
                out += fmas("    ")
                out.append("  }")
            return out
        out += [f"  for (var k = {ks[0]}u; k < {ks[-1] + 1}u; k++) {{",
                f"    let base = {buf} * {TK * row4}u + k * {row4}u;",
                "    let a0 = a_s[base + ty]; let a1 = a_s[base + 16u + ty];",
                "    let b0 = b_s[base + tx]; let b1 = b_s[base + 16u + tx];"]
        out += fmas("    ")
        out.append("  }")
        return out

    def fmas(ind):
        return [f"{ind}c{q * 4 + i}{h} = fma(vec4<f32>(a{q}.{'xyzw'[i]}), b{'0' if h == 'a' else '1'}, c{q * 4 + i}{h});"
                for q in range(2) for i in range(4) for h in "ab"]

    def slice_body(buf, nxt, t_next):
        """Multiply slice in buffer `buf` while staging slice t_next into buffer `nxt`."""
        ks = list(range(TK))
        out = [f"  if ({t_next} < slices) {{"]
        if SPLIT:
            half = TK // 2
            out += load(0, f"({t_next}) * {TK}u") + ["  }"]
            out += compute(buf, ks[:half])
            out += [f"  if ({t_next} < slices) {{"] + store(0, nxt) + load(1, f"({t_next}) * {TK}u") + ["  }"]
            out += compute(buf, ks[half:])
            out += [f"  if ({t_next} < slices) {{"] + store(1, nxt) + ["  }"]
        else:
            for j in range(loads):
                out += load(j, f"({t_next}) * {TK}u")
            out.append("  }")
            out += compute(buf, ks)
            out += [f"  if ({t_next} < slices) {{"] + [s for j in range(loads) for s in store(j, nxt)] + ["  }"]
        if not NOBAR:
            out.append("  workgroupBarrier();")
        return out

    L.append(f"  let slices = dims.z / {TK}u;")
    for j in range(loads):
        L += load(j, "0u") + store(j, "0u")
    L.append("  workgroupBarrier();")
    if PAIRLOOP:  # PAIR as a loop of two rounds on the buffer h (constant once the compiler unrolls it)
        L += ["  for (var t0 = 0u; t0 < slices; t0 += 2u) {", "  for (var h = 0u; h < 2u; h++) {",
              "  let t = t0 + h;", "  if (t < slices) {"]
        L += ["  " + s for s in slice_body("h", "(1u - h)", "t + 1u")]
        L += ["  }", "  }"]
    elif PAIR:  # slices t (buffer 0) and t + 1 (buffer 1); slices is even
        L.append("  for (var t = 0u; t < slices; t += 2u) {")
        L += ["  " + s for s in slice_body("0u", "1u", "t + 1u") + slice_body("1u", "0u", "t + 2u")]
    else:
        L.append("  for (var t = 0u; t < slices; t++) {")
        L += ["  " + s for s in slice_body("(t & 1u)", "((t + 1u) & 1u)", "t + 1u")]
    L.append("  }")
    L += tile_stores("N4")
    L.append("}")
    return "\n".join(L)


def tile_stores(width4: str) -> list:
    """WGSL lines storing an invocation's 8 x 8 outputs of the 128 x 128 tile at (row0, col0) into C (vec4,
    rows of `width4` vec4): c{q*4+i}a / c{q*4+i}b are row row0 + q*64 + ty*4 + i, columns col0 + tx*4 and
    col0 + 64 + tx*4 (4 each)."""
    L = []
    for q in range(2):
        for i in range(4):
            row = f"row0 + {q * 64 + i}u + ty * 4u"
            L.append(f"  C[({row}) * {width4} + col0 / 4u + tx] = c{q * 4 + i}a;")
            L.append(f"  C[({row}) * {width4} + col0 / 4u + 16u + tx] = c{q * 4 + i}b;")
    return L


FMA_VARIANTS = {
    "f32 TK8": {}, "f32 TK8 UNROLL": {"UNROLL": True}, "f32 TK8 PAIR": {"PAIR": True},
    "f32 TK8 PAIRLOOP": {"PAIRLOOP": True},
    "f32 TK16": {"TK": 16}, "f32 TK16 SPLIT": {"TK": 16, "SPLIT": True},
    "f32 TK16 SPLIT UNROLL": {"TK": 16, "SPLIT": True, "UNROLL": True},
    "f32 TK8 NOGLOBAL": {"NOGLOBAL": True}, "f32 TK8 NOBAR": {"NOBAR": True},
    "f32 TK16 SPLIT NOGLOBAL": {"TK": 16, "SPLIT": True, "NOGLOBAL": True},
}


def coop_source(NOGLOBAL=False, NOBAR=False, NOSTAGE=False) -> str:
    """shaders/matmul_coop.wgsl (its includes expanded), edited for an ablation."""
    from pyscript_app.gpu.registry import shader_source
    src = shader_source("matmul_coop.wgsl")
    loop_start = src.index("  for (var s = first; s < last; s++) {")
    loop_end = src.index("  let r = row0 + sr;")
    loop = src[loop_start:loop_end]
    if NOGLOBAL:
        loop = loop.replace("(s + 1u) * BK)", "first * BK)")
    if NOSTAGE:
        loop = loop.replace("if (more) {", "if (false) {")
    if NOBAR:
        loop = re.sub(r"\n    workgroupBarrier\(\);\n  }\n$", "\n  }\n", loop)
        assert "workgroupBarrier" not in loop
    return src[:loop_start] + loop + src[loop_end:]


COOP_VARIANTS = {  # name -> (block, ablations)
    "coop 2x2x4x4 BK32": ((2, 2, 4, 4, 32), {}),
    "coop 2x4x4x2 BK32": ((2, 4, 4, 2, 32), {}),
    "coop 4x2x2x4 BK32": ((4, 2, 2, 4, 32), {}),
    "coop 2x2x4x4 BK16": ((2, 2, 4, 4, 16), {}),
    "coop 2x2x2x2 BK32": ((2, 2, 2, 2, 32), {}),
    "coop 2x2x4x4 BK32 NOGLOBAL": ((2, 2, 4, 4, 32), {"NOGLOBAL": True}),
    "coop 2x2x4x4 BK32 NOBAR": ((2, 2, 4, 4, 32), {"NOBAR": True}),
    "coop 2x2x4x4 BK32 NOSTAGE": ((2, 2, 4, 4, 32), {"NOSTAGE": True}),
    "coop 2x2x4x4 BK32 NOSTAGE NOBAR": ((2, 2, 4, 4, 32), {"NOSTAGE": True, "NOBAR": True}),
}


def buffers(device, wgpu, a, b):
    usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
    ba = device.create_buffer_with_data(data=a.tobytes(), usage=usage)
    bb = device.create_buffer_with_data(data=b.tobytes(), usage=usage)
    bc = device.create_buffer(size=4 * a.shape[0] * b.shape[1], usage=usage)
    return ba, bb, bc, usage


def fma_kernel(device, wgpu, knobs, a, b):
    n = a.shape[0]
    module = device.create_shader_module(code=fma_gemm(**knobs))
    pipeline = device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
    ba, bb, bc, _ = buffers(device, wgpu, a, b)
    bu = device.create_buffer_with_data(data=np.array([n, n, n, 0], np.uint32).tobytes(), usage=wgpu.BufferUsage.UNIFORM)
    return dispatcher(device, pipeline, (ba, bb, bc, bu), bc, (n // 128, n // 128, 1)), bc


def coop_kernel(device, wgpu, block, ablations, a, b):
    n = a.shape[0]
    wy, wx, rt, ct, bk = block
    module = device.create_shader_module(code=coop_source(**ablations))
    constants = {"WY": wy, "WX": wx, "RT": rt, "CT": ct, "BK": bk}
    pipeline = device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "matmul_coop",
                                                                      "constants": constants})
    ba, bb, bc, usage = buffers(device, wgpu, a, b)
    spare = device.create_buffer(size=256, usage=usage)
    spare2 = device.create_buffer(size=256, usage=usage)
    from pyscript_app.gpu.registry import COOP_UNIFORM
    values = {"N": n, "K": n, "M": n, "a_scale": 1.0, "b_scale": 1.0, "out_scale": 1.0, "lda": n, "ldb": n, "ldy": n,
              "heads": 1, "batches": 1}
    words = b"".join(np.array([values.get(name, 0)], np.float32 if kind == "f32" else np.uint32).tobytes()
                     for name, kind in COOP_UNIFORM)
    bu = device.create_buffer_with_data(data=words + bytes(-len(words) % 16), usage=wgpu.BufferUsage.UNIFORM)
    grid = (n // (wx * ct * 16), n // (wy * rt * 16), 1)
    return dispatcher(device, pipeline, (ba, bb, spare, bc, spare2, bu), bc, grid), bc


def open_native():
    """wgpu-native on any adapter (lavapipe on a CPU), for --check."""
    import wgpu
    adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    limit = "max-compute-workgroup-storage-size"
    return wgpu, adapter, adapter.request_device_sync(required_limits={limit: adapter.limits[limit]})


def timed(run, reps) -> float:
    t0 = time.perf_counter()
    run(reps)
    return (time.perf_counter() - t0) / reps


def main() -> int:
    check = "--check" in sys.argv
    n = 256 if check else N
    result: dict = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv), "n": n}
    wgpudawn, adapter, device = open_native() if check else open_dawn()
    result["adapter"] = {k: adapter.info.get(k) for k in ("device", "description", "backend_type")}
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    kernels: dict = {}
    rows = result["kernels"] = {}
    coop = "chromium-experimental-subgroup-matrix" in adapter.features and not check
    todo = [(name, lambda k=knobs: fma_kernel(device, wgpudawn, k, a, b), False, knobs) for name, knobs in FMA_VARIANTS.items()]
    if coop:
        todo += [(name, lambda blk=blk, ab=ab: coop_kernel(device, wgpudawn, blk, ab, a, b), True, ab)
                 for name, (blk, ab) in COOP_VARIANTS.items()]
    for name, make, f16, knobs in todo:
        try:
            run, out = make()
            run(1)
            ablated = any(knobs.get(k) for k in ("NOGLOBAL", "NOBAR", "NOSTAGE"))
            rows[name] = {"rel_err": None if ablated else first_rows_error(device, out, a, b, f16)}
            kernels[name] = run
        except Exception as e:
            rows[name] = {"error": f"{type(e).__name__}: {e}"[:600]}
        print(name, rows[name], flush=True)
    if check:
        json.dump(result, open(sys.argv[1], "w"), indent=1)
        return 0
    reps = {name: max(1, int(TARGET_S / max(timed(run, 1), 1e-5))) for name, run in kernels.items()}
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        for run in kernels.values():
            run(1)
    for _ in range(ROUNDS):
        for name, run in kernels.items():
            rows[name].setdefault("tflops_rounds", []).append(2 * n ** 3 / timed(run, reps[name]) / 1e12)
    for name, run in kernels.items():
        rows[name]["tflops"] = max(rows[name]["tflops_rounds"])
        print(f"{name:36s} {rows[name]['tflops']:7.1f} TFLOP/s  rounds {['%.1f' % x for x in rows[name]['tflops_rounds']]}")
    json.dump(result, open(sys.argv[1], "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
