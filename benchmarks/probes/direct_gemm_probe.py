"""Question: do GEMMs that read their operands straight from global memory (no staging in workgroup
memory, no barriers; the caches share each operand between the invocations that need it) beat the
staged GEMMs, on the matrix units and in f32? gemm_staging_probe found the staging costing the staged
GEMMs much of their time: on the matrix units its instructions (f32 loads, rounding, 16-bit stores into
workgroup memory) most of it (shaders/matmul_coop.wgsl 67 TFLOP/s at 4096^3 on an H100, 164 with no
staging); in f32 a quarter (the inner loop alone 49 TFLOP/s, the GEMM 36), with no one part dominating
and the global loads' latency already hidden. One subgroup per workgroup loading straight from global
memory reached 72 TFLOP/s (coop_matrix_probe).

    python3 benchmarks/probes/direct_gemm_probe.py OUT.json           # on the GPU
    WGPU_BACKEND_TYPE=Null python3 benchmarks/probes/direct_gemm_probe.py --validate   # matrix-unit WGSL only
    python3 benchmarks/probes/direct_gemm_probe.py OUT.json --check   # the f32 kernels' numbers at 256^3,
                                                                     # wgpu-native on any adapter

Matrix units (`direct_shader`): WY x WX subgroups of 32 invocations; each owns RT x CT result tiles of
16 x 16 (f16 in, f32 accumulated) in named variables; the workgroup's block is (WY*RT*16) x (WX*CT*16).
DEPTH 0: each 16-deep k-step loads its RT + CT tiles, then multiplies them. DEPTH 1: the tiles of step
k + 16 are loaded before step k's multiplies, into a second set of named tiles (the loop walks two steps
per iteration so that neither set is copied). Layouts as the step's products: A (N,K) or stored (K,N)
(A_T: x for dw), B (K,M) or stored (M,K) (B_T: w for dx). If these run well above the staged GEMM, the
mixed step's products would take f16 copies of their operands, written by a rounding pass or by the
kernels that produce them: the probe times that pass (f32 -> f16 of both 4096^2 operands) too, and the
fastest plain direct kernel with it.
f32 (`fma_direct_shader`): the project's tile (128 x 128, 256 invocations, each 8 x 8 outputs in two 4 x 4
quads per dimension, half a tile apart), every invocation loading its operands straight from global
memory as vec4 along their stored rows, 4 or 8 k-steps per load round: the forward's layout (A's rows
along k, B's column quads), dx's (B stored transposed: B_T) and dw's (A stored transposed: A_T). DEPTH 1:
the next round's operands loaded before this round's FMAs (a second set of named registers). Beside them
gemm_staging_probe's staged GEMM of the same tile (`f32 staged TK8`).
Every kernel at 4096^3 (N, K, M multiples of the block and of 32), its first 64 rows checked against
numpy (float64; over the f16-rounded operands on the matrix units), then timed in interleaved rounds
after a warm-up, beside shaders/matmul_coop.wgsl on its 128 x 128 block (f32 operands: the committed
path) and PyTorch's f16, bf16 and f32 4096^3 in the same process."""
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from coop_staged_probe import open_dawn, operands  # noqa: E402
from gemm_ceiling_probe import dispatcher, first_rows_error, timed, torch_peers  # noqa: E402
from gemm_staging_probe import buffers, coop_kernel, fma_kernel, open_native, tile_stores  # noqa: E402

N = 4096
ROUNDS = 3
TARGET_S = 0.05

# (WY, WX, RT, CT, DEPTH, A_T, B_T)
VARIANTS = [(1, 1, 4, 4, 0, False, False), (1, 1, 4, 4, 1, False, False),
            (2, 2, 4, 4, 0, False, False), (2, 2, 4, 4, 1, False, False),
            (2, 2, 2, 4, 1, False, False), (4, 2, 2, 4, 1, False, False), (2, 4, 4, 2, 1, False, False),
            (4, 4, 2, 2, 1, False, False), (2, 2, 2, 2, 1, False, False), (4, 4, 4, 4, 1, False, False),
            (2, 2, 4, 4, 1, True, False), (2, 2, 4, 4, 1, False, True)]


def variant_name(wy, wx, rt, ct, depth, a_t, b_t) -> str:
    layout = "A_T" if a_t else "B_T" if b_t else "plain"
    return f"direct {wy}x{wx} subgroups {rt}x{ct} tiles depth {depth} {layout}"


def tile_loads(rt: int, ct: int, a_t: bool, b_t: bool, k: str, suffix: str) -> list:
    """WGSL lines loading the subgroup's RT tiles of A and CT tiles of B at k-step `k` into a{i}{suffix},
    b{j}{suffix} (declared with var). Rows `row + 16 i` of A and columns `col + 16 j` of B."""
    L = []
    for i in range(rt):
        off, major, stride = ((f"{k} * N + row + {16 * i}u", "true", "N") if a_t else
                              (f"(row + {16 * i}u) * K + {k}", "false", "K"))
        L.append(f"a{i}{suffix} = subgroupMatrixLoad<L>(&a, {off}, {major}, {stride});")
    for j in range(ct):
        off, major, stride = ((f"(col + {16 * j}u) * K + {k}", "true", "K") if b_t else
                              (f"{k} * M + col + {16 * j}u", "false", "M"))
        L.append(f"b{j}{suffix} = subgroupMatrixLoad<R>(&b, {off}, {major}, {stride});")
    return L


def multiplies(rt: int, ct: int, suffix: str) -> list:
    return [f"c{i}_{j} = subgroupMatrixMultiplyAccumulate(a{i}{suffix}, b{j}{suffix}, c{i}_{j});"
            for i in range(rt) for j in range(ct)]


def direct_shader(wy: int, wx: int, rt: int, ct: int, depth: int, a_t: bool, b_t: bool) -> str:
    """WGSL of one direct kernel. Bindings: 0 a (f16, A or A stored (K,N)), 1 b (f16, B or B stored
    (M,K)), 2 c (f32, (N,M) row-major), 3 dims (N, K, M). Grid (M / BN, N / BM, 1); K a multiple of 32."""
    bm, bn = wy * rt * 16, wx * ct * 16
    L = ["enable f16;", "enable chromium_experimental_subgroup_matrix;",
         "diagnostic(off, chromium.subgroup_matrix_uniformity);",
         "@group(0) @binding(0) var<storage, read> a: array<f16>;",
         "@group(0) @binding(1) var<storage, read> b: array<f16>;",
         "@group(0) @binding(2) var<storage, read_write> c: array<f32>;",
         "@group(0) @binding(3) var<uniform> dims: vec4<u32>;",
         "alias L = subgroup_matrix_left<f16, 16, 16>;",
         "alias R = subgroup_matrix_right<f16, 16, 16>;",
         "alias Cm = subgroup_matrix_result<f32, 16, 16>;",
         f"@compute @workgroup_size({32 * wy * wx})",
         "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {",
         "  let N = dims.x; let K = dims.y; let M = dims.z;",
         "  let sg = lid / 32u;",
         f"  let row = wid.y * {bm}u + (sg / {wx}u) * {rt * 16}u;",
         f"  let col = wid.x * {bn}u + (sg % {wx}u) * {ct * 16}u;"]
    L += [f"  var c{i}_{j} = Cm();" for i in range(rt) for j in range(ct)]
    sets = ("0", "1") if depth else ("0",)
    L += [f"  var a{i}{s}: L;" for s in sets for i in range(rt)]
    L += [f"  var b{j}{s}: R;" for s in sets for j in range(ct)]
    if depth == 0:
        L.append("  for (var k = 0u; k < K; k += 16u) {")
        L += ["    " + x for x in tile_loads(rt, ct, a_t, b_t, "k", "0") + multiplies(rt, ct, "0")]
    else:
        # set 0 holds step k, set 1 step k + 16; the last iteration reloads its own step (k + 32 clamped to
        # K - 16) rather than branch: a redundant load of tiles already in the caches
        L += ["  " + x for x in tile_loads(rt, ct, a_t, b_t, "0u", "0")]
        L.append("  for (var k = 0u; k < K; k += 32u) {")
        L += ["    " + x for x in tile_loads(rt, ct, a_t, b_t, "(k + 16u)", "1") + multiplies(rt, ct, "0")]
        L.append("    let k2 = min(k + 32u, K - 16u);")
        L += ["    " + x for x in tile_loads(rt, ct, a_t, b_t, "k2", "0") + multiplies(rt, ct, "1")]
    L.append("  }")
    L += [f"  subgroupMatrixStore(&c, (row + {16 * i}u) * M + col + {16 * j}u, c{i}_{j}, false, M);"
          for i in range(rt) for j in range(ct)]
    L.append("}")
    return "\n".join(L)


# (k-steps per load round, DEPTH, A_T, B_T) of the f32 direct kernels: the forward's layout (x @ w) four
# ways, then dx's (dy @ w^T: B_T) and dw's (x^T @ dy: A_T)
FMA_VARIANTS = ((4, 0, False, False), (4, 1, False, False), (8, 0, False, False), (8, 1, False, False),
                (4, 1, False, True), (8, 1, False, True), (4, 1, True, False), (8, 1, True, False))


def fma_variant_name(kr, depth, a_t, b_t) -> str:
    layout = "A_T" if a_t else "B_T" if b_t else "plain"
    return f"f32 direct 8x8 per invocation {kr} k per round depth {depth} {layout}"


def fma_direct_shader(kr: int, depth: int, a_t: bool = False, b_t: bool = False) -> str:
    """WGSL of an f32 direct kernel: C (N,M) = A (N,K) @ B (K,M); A stored (N,K), or (K,N) (A_T); B stored
    (K,M), or (M,K) (B_T); N and M multiples of 128, K of 2 * kr. 256 invocations; (tx, ty) = (lid % 16,
    lid / 16) owns rows ty*4 + i and 64 + ty*4 + i (i < 4), columns tx*4 .. +3 (quad a) and 64 + tx*4 .. +3
    (quad b). A load round covers kr k-steps, every load a vec4 along the operand's stored rows:
      A: kr / 4 vec4 (along k) of each of the 8 rows; A_T: for each k, the 2 row quads (along rows);
      B: for each k, the 2 column quads (along columns); B_T: kr / 4 vec4 (along k) of each of the 8 columns.
    DEPTH 0: a round's loads, then its FMAs; DEPTH 1: round t + 1's loads before round t's FMAs (two sets of
    named registers, two rounds per loop iteration). Bindings: 0 A, 1 B (vec4, read), 2 C (vec4), 3 dims
    (N, M, K). Grid (M / 128, N / 128, 1)."""
    v4 = kr // 4
    L = ["@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;",
         "@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;",
         "@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;",
         "@group(0) @binding(3) var<uniform> dims: vec4<u32>;",
         "@compute @workgroup_size(256)",
         "fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {",
         "  let tx = tid % 16u; let ty = tid / 16u;",
         f"  let N4 = dims.x / 4u; let K4 = dims.z / 4u; let M4 = dims.y / 4u; let rounds = dims.z / {kr}u;",
         "  let bcol = wg.x * 32u + tx;  // B's vec4 column of quad a; quad b is 16 further"]
    if a_t:
        L.append("  let arow = wg.y * 32u + ty;  // A_T's vec4 row of quad 0; quad 1 is 16 further")
    # the 8 rows of A (or 8 columns of B_T): the first float of each, in vec4 units of its stored rows
    if not a_t:
        L += [f"  let arow{r} = (wg.y * 128u + {(r // 4) * 64 + r % 4}u + ty * 4u) * K4;" for r in range(8)]
    if b_t:
        L += [f"  let bcol{c} = (wg.x * 128u + {(c // 4) * 64 + c % 4}u + tx * 4u) * K4;" for c in range(8)]
    L += [f"  var c{r}{h} = vec4<f32>(0.0);" for r in range(8) for h in "ab"]
    sets = ("0", "1") if depth else ("0",)
    a_regs = [f"x{kk}{q}" for kk in range(kr) for q in range(2)] if a_t else [f"x{r}_{v}" for r in range(8) for v in range(v4)]
    b_regs = [f"y{c}_{v}" for c in range(8) for v in range(v4)] if b_t else [f"y{kk}{h}" for kk in range(kr) for h in "ab"]
    L += [f"  var {x}_{s}: vec4<f32>;" for s in sets for x in a_regs + b_regs]

    def loads(t: str, s: str) -> list:  # round t (k = kr t .. kr t + kr - 1) into set s
        if a_t:
            out = [f"x{kk}{q}_{s} = A[(({t}) * {kr}u + {kk}u) * N4 + arow{' + 16u' if q else ''}];"
                   for kk in range(kr) for q in range(2)]
        else:
            out = [f"x{r}_{v}_{s} = A[arow{r} + ({t}) * {v4}u + {v}u];" for r in range(8) for v in range(v4)]
        if b_t:
            out += [f"y{c}_{v}_{s} = B[bcol{c} + ({t}) * {v4}u + {v}u];" for c in range(8) for v in range(v4)]
        else:
            out += [f"y{kk}{h}_{s} = B[(({t}) * {kr}u + {kk}u) * M4 + bcol{' + 16u' if h == 'b' else ''}];"
                    for kk in range(kr) for h in "ab"]
        return out

    def a_value(r: int, kk: int, s: str) -> str:  # A (row r of the 8, k-step kk of the round)
        return f"x{kk}{r // 4}_{s}.{'xyzw'[r % 4]}" if a_t else f"x{r}_{kk // 4}_{s}.{'xyzw'[kk % 4]}"

    def b_quad(h: str, kk: int, s: str) -> str:  # B (k-step kk, the 4 columns of quad h)
        if not b_t:
            return f"y{kk}{h}_{s}"
        q = 0 if h == "a" else 4
        return "vec4<f32>(" + ", ".join(f"y{q + j}_{kk // 4}_{s}.{'xyzw'[kk % 4]}" for j in range(4)) + ")"

    def fmas(s: str) -> list:
        out = []
        for kk in range(kr):
            out += [f"let b{kk}{h}_{s} = {b_quad(h, kk, s)};" for h in "ab"] if b_t else []
            out += [f"c{r}{h} = fma(vec4<f32>({a_value(r, kk, s)}), {f'b{kk}{h}_{s}' if b_t else b_quad(h, kk, s)}, c{r}{h});"
                    for r in range(8) for h in "ab"]
        return out
    if depth == 0:
        L.append("  for (var t = 0u; t < rounds; t++) {")
        L += ["    " + x for x in loads("t", "0") + fmas("0")]
    else:  # set 0 holds round t, set 1 round t + 1; the last iteration reloads its own round (clamped)
        L += ["  " + x for x in loads("0u", "0")]
        L.append("  for (var t = 0u; t < rounds; t += 2u) {")
        L += ["    " + x for x in loads("t + 1u", "1") + ["{"] + fmas("0") + ["}"]]
        L.append("    let t2 = min(t + 2u, rounds - 1u);")
        L += ["    " + x for x in loads("t2", "0") + ["{"] + fmas("1") + ["}"]]
    L.append("  }")
    L += ["  let row0 = wg.y * 128u; let col0 = wg.x * 128u;"] + tile_stores("M4")
    L.append("}")
    return "\n".join(L)


def fma_direct_kernel(device, wgpu, variant, a, b):
    """(run, output buffer) of one f32 direct kernel on A = a, B = b (square; stored as the variant reads them)."""
    kr, depth, a_t, b_t = variant
    n = a.shape[0]
    module = device.create_shader_module(code=fma_direct_shader(kr, depth, a_t, b_t))
    pipeline = device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
    sa = np.ascontiguousarray(a.T if a_t else a)
    sb = np.ascontiguousarray(b.T if b_t else b)
    ba, bb, bc, _ = buffers(device, wgpu, sa, sb)
    bu = device.create_buffer_with_data(data=np.array([n, n, n, 0], np.uint32).tobytes(), usage=wgpu.BufferUsage.UNIFORM)
    return dispatcher(device, pipeline, (ba, bb, bc, bu), bc, (n // 128, n // 128, 1)), bc


ROUNDING_SHADER = """enable f16;
// f16(x) of n vec4 (rounded to nearest even), one vec4 per invocation; grid (ceil(n / 256 / 64), 64, 1)
@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> h: array<vec4<f16>>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let i = gid.y * nw.x * 256u + gid.x;
  if (i < arrayLength(&x)) { h[i] = vec4<f16>(x[i]); }
}
"""


def direct_kernel(device, wgpu, variant, a, b):
    """(run, output buffer) of one direct kernel on A = a, B = b (f32 logical operands, rounded and laid out
    as the variant reads them)."""
    wy, wx, rt, ct, depth, a_t, b_t = variant
    n = a.shape[0]
    module = device.create_shader_module(code=direct_shader(*variant))
    pipeline = device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
    sa = np.ascontiguousarray(a.T if a_t else a).astype(np.float16)
    sb = np.ascontiguousarray(b.T if b_t else b).astype(np.float16)
    ba, bb, bc, _ = buffers(device, wgpu, sa, sb)  # (square: c is n x n whatever the layouts)
    bu = device.create_buffer_with_data(data=np.array([n, n, n, 0], np.uint32).tobytes(), usage=wgpu.BufferUsage.UNIFORM)
    return dispatcher(device, pipeline, (ba, bb, bc, bu), bc, (n // (wx * ct * 16), n // (wy * rt * 16), 1)), bc


def rounding_kernel(device, wgpu, a, b):
    """(run, exact) for the pass rounding both operands to f16 (one dispatch each); exact: A's copy equals
    numpy's rounding."""
    module = device.create_shader_module(code=ROUNDING_SHADER)
    pipeline = device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
    usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
    runs = []
    for x in (a, b):
        bx = device.create_buffer_with_data(data=x.tobytes(), usage=usage)
        bh = device.create_buffer(size=2 * x.size, usage=usage)
        runs.append((dispatcher(device, pipeline, (bx, bh), bh, (x.size // 4 // 256 // 64, 64, 1)), bx, bh))

    def run(n):
        for r, _, _ in runs:
            r(n)
    runs[0][0](1)
    got = np.frombuffer(device.queue.read_buffer(runs[0][2], 0, 2 * a.size), np.float16).reshape(a.shape)
    return run, bool(np.array_equal(got, a.astype(np.float16)))


def validate() -> int:
    """Compile every direct kernel's WGSL, and build the pipelines that Dawn's Null device allows (it lists
    the features and runs nothing)."""
    _, _, device = open_dawn()
    bad = 0
    for v in VARIANTS:
        try:
            module = device.create_shader_module(code=direct_shader(*v))
            if 32 * v[0] * v[1] in (128, 256):  # what the Null device builds (subgroups up to 128 wide; 256 invocations)
                device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
        except Exception as e:
            bad += 1
            print(variant_name(*v), str(e)[:800])
    try:
        device.create_shader_module(code=ROUNDING_SHADER)
    except Exception as e:
        bad += 1
        print("rounding", str(e)[:800])
    print("compiled", "all" if not bad else f"all but {bad}")
    return 1 if bad else 0


def main() -> int:
    if "--validate" in sys.argv:
        return validate()
    check = "--check" in sys.argv
    n = 256 if check else N
    result: dict = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv), "n": n}
    wgpu, adapter, device = open_native() if check else open_dawn()
    result["adapter"] = {k: adapter.info.get(k) for k in ("device", "description", "backend_type")}
    rng = np.random.default_rng(0)
    a, b, _, _ = operands(rng, n, n, n, False, False, np.float32)
    kernels: dict = {}
    rows = result["kernels"] = {}
    todo = [(fma_variant_name(*v), lambda v=v: fma_direct_kernel(device, wgpu, v, a, b), False) for v in FMA_VARIANTS]
    todo.append(("f32 staged TK8", lambda: fma_kernel(device, wgpu, {}, a, b), False))
    if not check:
        todo += [(variant_name(*v), lambda v=v: direct_kernel(device, wgpu, v, a, b), True) for v in VARIANTS]
        todo.append(("matmul_coop.wgsl 2x2 subgroups 4x4 tiles BK32 (f32 operands)",
                     lambda: coop_kernel(device, wgpu, (2, 2, 4, 4, 32), {}, a, b), True))
    for name, make, f16 in todo:
        try:
            run, out = make()
            run(1)
            rows[name] = {"rel_err": first_rows_error(device, out, a, b, f16=f16)}
            kernels[name] = (run, 2.0 * n ** 3)
        except Exception as e:
            rows[name] = {"error": f"{type(e).__name__}: {e}"[:600]}
        print(name, rows[name], flush=True)
    if check:
        json.dump(result, open(sys.argv[1], "w"), indent=1)
        return 0 if all(r.get("rel_err", 1.0) < 1e-5 for r in rows.values()) else 1
    try:
        run, exact = rounding_kernel(device, wgpu, a, b)
        rows["rounding pass, both operands"] = {"exact": exact}
        kernels["rounding pass, both operands"] = (run, 0.0)
    except Exception as e:
        rows["rounding pass, both operands"] = {"error": f"{type(e).__name__}: {e}"[:600]}
    reps = {name: max(1, int(TARGET_S / max(timed(run, 1), 1e-5))) for name, (run, _) in kernels.items()}
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.0:  # the clocks up
        for run, _ in kernels.values():
            run(1)
    for _ in range(ROUNDS):
        for name, (run, flops) in kernels.items():
            s = timed(run, reps[name])
            rows[name].setdefault("ms_rounds", []).append(s * 1e3)
            if flops:
                rows[name].setdefault("tflops_rounds", []).append(flops / s / 1e12)
    for name, row in rows.items():
        if "ms_rounds" in row:
            row["ms"] = min(row["ms_rounds"])
            if "tflops_rounds" in row:
                row["tflops"] = max(row["tflops_rounds"])
        print(f"{name:64s} {row.get('tflops', 0):7.1f} TFLOP/s {row.get('ms', 0):8.3f} ms  {row.get('rel_err', '')}")
    rounded_first(rows)
    torch_peers(result)
    json.dump(result, open(sys.argv[1], "w"), indent=1)
    return 0


def rounded_first(rows: dict) -> None:
    """Add the row a product with f32 operands would get from the fastest correct plain direct kernel: its
    time plus the rounding pass's (both operands rounded to f16 in a pass of their own)."""
    rounding = rows.get("rounding pass, both operands", {}).get("ms")
    plain = [(row["ms"], name) for name, row in rows.items() if name.startswith("direct") and name.endswith("plain")
             and row.get("ms") and row.get("rel_err", 1.0) < 1e-2]
    if rounding and plain:
        ms, name = min(plain)
        rows[f"{name}, operands rounded first"] = {"ms": ms + rounding, "tflops": 2.0 * N ** 3 / (ms + rounding) / 1e9}


if __name__ == "__main__":
    sys.exit(main())
