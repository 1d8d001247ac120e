"""Question: with several subgroups per workgroup and operand tiles staged in workgroup memory, how fast
do Dawn's f16 subgroup matrices (f32 results) multiply, at 4096^3 and at `large`'s own product shapes
and layouts (x @ W, dy @ W^T, x^T @ dy), when the operands stay f32 in global memory and are rounded to
f16 as they are staged? And how fast is PyTorch's `large` training step under AMP (bf16 autocast), the
peer of a mixed-precision step?

    python3 benchmarks/probes/coop_staged_probe.py OUT.json           # on the GPU
    WGPU_BACKEND_TYPE=Null python3 benchmarks/probes/coop_staged_probe.py --validate   # WGSL only
    (--only=gen or --only=file: one kind of variant: the generated shader or shaders/matmul_coop.wgsl)

Each variant: WY x WX subgroups of 32 invocations, each computing RT x CT result tiles of 16 x 16 held
in named variables; a workgroup computes a (WY*RT*16) x (WX*CT*16) block of C = A @ B, walking K in
slices of BK staged as f16 in workgroup memory (two buffers, the next slice's global loads in registers
while the current one is multiplied, one barrier per slice). `diagnostic(off,
chromium.subgroup_matrix_uniformity)` lets a subgroup's offsets depend on its index. Checked against
numpy (float64 over the f16-rounded operands) on a small case of each layout, then timed."""
import json
import sys
import time

import numpy as np

SUBGROUP = 32
# Each timing follows this much of the same dispatches: with two warm-up dispatches only, identical
# kernels timed one after another differed 3-5x (coop-staged-probe-h100-dawn-2026-12-07.json).
WARM_UP_S = 0.3


def staged_shader(src: str, a_t: bool, b_t: bool, wy: int, wx: int, rt: int, ct: int, bk: int) -> str:
    """WGSL for one variant. src: the operands' element type in global memory ("f32" or "f16").
    a_t: A is stored (K,N) (as x for dw = x^T @ dy); b_t: B is stored (M,K) (as W for dx = dy @ W^T).
    Dims (uniform): N, K, M multiples of the block and of BK."""
    bm, bn, threads = wy * rt * 16, wx * ct * 16, SUBGROUP * wy * wx
    pad = 8
    # A staged as [BM][BK+pad] (k fastest) or, stored transposed, [BK][BM+pad] (m fastest)
    a_rows, a_cols = (bk, bm) if a_t else (bm, bk)
    b_rows, b_cols = (bn, bk) if b_t else (bk, bn)
    a_stride, b_stride = a_cols + pad, b_cols + pad
    a_size, b_size = a_rows * a_stride, b_rows * b_stride
    a_loads, b_loads = a_rows * a_cols // 4 // threads, b_rows * b_cols // 4 // threads
    assert a_loads * 4 * threads == a_rows * a_cols and b_loads * 4 * threads == b_rows * b_cols
    L = ["enable f16;", "enable chromium_experimental_subgroup_matrix;",
         "diagnostic(off, chromium.subgroup_matrix_uniformity);",
         f"@group(0) @binding(0) var<storage, read> a: array<vec4<{src}>>;",
         f"@group(0) @binding(1) var<storage, read> b: array<vec4<{src}>>;",
         "@group(0) @binding(2) var<storage, read_write> c: array<f32>;",
         "@group(0) @binding(3) var<uniform> dims: vec4<u32>;  // N, K, M",
         f"var<workgroup> a_sh: array<f16, {2 * a_size}>;",
         f"var<workgroup> b_sh: array<f16, {2 * b_size}>;",
         "alias L = subgroup_matrix_left<f16, 16, 16>;",
         "alias R = subgroup_matrix_right<f16, 16, 16>;",
         "alias Cm = subgroup_matrix_result<f32, 16, 16>;",
         # global -> registers (f16): the e-th vec4 of the slice's tile
         "fn load_a(e: u32, row0: u32, k0: u32, N: u32, K: u32) -> vec4<f16> {",
         f"  let r = e / {a_cols // 4}u; let q = e % {a_cols // 4}u;",
         ("  return vec4<f16>(a[((k0 + r) * N + row0) / 4u + q]);" if a_t else
          "  return vec4<f16>(a[((row0 + r) * K + k0) / 4u + q]);"),
         "}",
         "fn load_b(e: u32, col0: u32, k0: u32, K: u32, M: u32) -> vec4<f16> {",
         f"  let r = e / {b_cols // 4}u; let q = e % {b_cols // 4}u;",
         ("  return vec4<f16>(b[((col0 + r) * K + k0) / 4u + q]);" if b_t else
          "  return vec4<f16>(b[((k0 + r) * M + col0) / 4u + q]);"),
         "}",
         "fn put_a(e: u32, buf: u32, v: vec4<f16>) {",
         f"  let i = buf * {a_size}u + (e / {a_cols // 4}u) * {a_stride}u + (e % {a_cols // 4}u) * 4u;",
         "  a_sh[i] = v.x; a_sh[i + 1u] = v.y; a_sh[i + 2u] = v.z; a_sh[i + 3u] = v.w;",
         "}",
         "fn put_b(e: u32, buf: u32, v: vec4<f16>) {",
         f"  let i = buf * {b_size}u + (e / {b_cols // 4}u) * {b_stride}u + (e % {b_cols // 4}u) * 4u;",
         "  b_sh[i] = v.x; b_sh[i + 1u] = v.y; b_sh[i + 2u] = v.z; b_sh[i + 3u] = v.w;",
         "}",
         f"@compute @workgroup_size({threads})",
         "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {",
         "  let N = dims.x; let K = dims.y; let M = dims.z;",
         f"  let row0 = wid.y * {bm}u; let col0 = wid.x * {bn}u;",
         f"  let sg = lid / {SUBGROUP}u;",
         f"  let sr = (sg / {wx}u) * {rt * 16}u; let sc = (sg % {wx}u) * {ct * 16}u;"]
    L += [f"  var c{i}_{j} = Cm();" for i in range(rt) for j in range(ct)]
    L += [f"  var ra{e}: vec4<f16>;" for e in range(a_loads)]
    L += [f"  var rb{e}: vec4<f16>;" for e in range(b_loads)]
    # slice 0 into buffer 0
    L += [f"  put_a(lid + {e * threads}u, 0u, load_a(lid + {e * threads}u, row0, 0u, N, K));" for e in range(a_loads)]
    L += [f"  put_b(lid + {e * threads}u, 0u, load_b(lid + {e * threads}u, col0, 0u, K, M));" for e in range(b_loads)]
    L.append("  workgroupBarrier();")
    L.append(f"  let slices = K / {bk}u;")
    L.append("  for (var s = 0u; s < slices; s++) {")
    L.append("    let buf = s & 1u;")
    L.append("    let more = s + 1u < slices;")
    L.append(f"    let k1 = (s + 1u) * {bk}u;")
    L.append("    if (more) {")
    L += [f"      ra{e} = load_a(lid + {e * threads}u, row0, k1, N, K);" for e in range(a_loads)]
    L += [f"      rb{e} = load_b(lid + {e * threads}u, col0, k1, K, M);" for e in range(b_loads)]
    L.append("    }")
    for kk in range(0, bk, 16):
        for j in range(ct):
            off = (f"buf * {b_size}u + (sc + {j * 16}u) * {b_stride}u + {kk}u" if b_t else
                   f"buf * {b_size}u + {kk * b_stride}u + sc + {j * 16}u")
            L.append(f"    let b{kk}_{j} = subgroupMatrixLoad<R>(&b_sh, {off}, {'true' if b_t else 'false'}, {b_stride}u);")
        for i in range(rt):
            off = (f"buf * {a_size}u + {kk * a_stride}u + sr + {i * 16}u" if a_t else
                   f"buf * {a_size}u + (sr + {i * 16}u) * {a_stride}u + {kk}u")
            L.append(f"    let a{kk}_{i} = subgroupMatrixLoad<L>(&a_sh, {off}, {'true' if a_t else 'false'}, {a_stride}u);")
            L += [f"    c{i}_{j} = subgroupMatrixMultiplyAccumulate(a{kk}_{i}, b{kk}_{j}, c{i}_{j});" for j in range(ct)]
    L.append("    if (more) {")
    L += [f"      put_a(lid + {e * threads}u, buf ^ 1u, ra{e});" for e in range(a_loads)]
    L += [f"      put_b(lid + {e * threads}u, buf ^ 1u, rb{e});" for e in range(b_loads)]
    L.append("    }")
    L.append("    workgroupBarrier();")
    L.append("  }")
    L += [f"  subgroupMatrixStore(&c, (row0 + sr + {i * 16}u) * M + col0 + sc + {j * 16}u, c{i}_{j}, false, M);"
          for i in range(rt) for j in range(ct)]
    L.append("}")
    return "\n".join(L)


# (WY, WX, RT, CT, BK)
SHAPES = ((2, 2, 4, 4, 32), (2, 4, 4, 2, 32), (4, 2, 2, 4, 32), (2, 2, 2, 4, 32), (2, 2, 2, 2, 32),
          (1, 1, 4, 4, 32), (4, 4, 2, 2, 32), (2, 4, 2, 2, 32), (2, 2, 4, 4, 16), (2, 2, 4, 4, 64))
# large (8 x 256 rows, C 512): (name, N, K, M, a_t, b_t)
LARGE = (("qkv", 2048, 512, 1536, False, False), ("fc", 2048, 512, 2048, False, False),
         ("fc_proj", 2048, 2048, 512, False, False), ("proj", 2048, 512, 512, False, False),
         ("head", 2048, 512, 1024, False, False),
         ("qkv.dx", 2048, 1536, 512, False, True), ("fc_proj.dx", 2048, 512, 2048, False, True),
         ("qkv.dw", 512, 2048, 1536, True, False), ("fc_proj.dw", 2048, 2048, 512, True, False),
         ("fc.dw", 512, 2048, 2048, True, False))


def operands(rng, N, K, M, a_t, b_t, dtype):
    a = rng.standard_normal((N, K)).astype(np.float32)
    b = rng.standard_normal((K, M)).astype(np.float32)
    a_stored = np.ascontiguousarray(a.T if a_t else a).astype(dtype)
    b_stored = np.ascontiguousarray(b.T if b_t else b).astype(dtype)
    return a, b, a_stored, b_stored


def run_gemm(device, wgpu, pipeline, a_stored, b_stored, N, K, M, bm, bn, reps, file=False, e=None,
             scales=(1.0, 1.0, 1.0)):
    """file: the bindings of shaders/matmul_coop.wgsl (a, b, e, y, params with the scales)."""
    usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
    ba = device.create_buffer_with_data(data=a_stored.tobytes(), usage=usage)
    bb = device.create_buffer_with_data(data=b_stored.tobytes(), usage=usage)
    bc = device.create_buffer(size=4 * N * M, usage=usage)
    if file:
        be = device.create_buffer_with_data(data=(e if e is not None else np.zeros(4, np.float32)).tobytes(), usage=usage)
        params = np.array([N, K, M], np.uint32).tobytes() + np.array([*scales, 0, 0], np.float32).tobytes()
        bu = device.create_buffer_with_data(data=params, usage=wgpu.BufferUsage.UNIFORM)
        bufs = (ba, bb, be, bc, bu)
    else:
        bu = device.create_buffer_with_data(data=np.array([N, K, M, 0], np.uint32).tobytes(), usage=wgpu.BufferUsage.UNIFORM)
        bufs = (ba, bb, bc, bu)
    group = device.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=[
        {"binding": i, "resource": {"buffer": buf, "offset": 0, "size": buf.size}} for i, buf in enumerate(bufs)])

    def run(n):
        enc = device.create_command_encoder()
        p = enc.begin_compute_pass()
        p.set_pipeline(pipeline)
        p.set_bind_group(0, group)
        for _ in range(n):
            p.dispatch_workgroups(-(-M // bn), -(-N // bm), 1)
        p.end()
        device.queue.submit([enc.finish()])
        device.queue.read_buffer(bc, 0, 64)  # waits for the GPU

    run(1)
    got = np.frombuffer(device.queue.read_buffer(bc), np.float32).reshape(N, M).copy()
    if reps == 0:
        return got, None
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < WARM_UP_S:  # the clocks up after compiling and uploading
        run(reps)
    t0 = time.perf_counter()
    run(reps)
    return got, (time.perf_counter() - t0) * 1e3 / reps


def reps_for(flops: float) -> int:
    return int(max(5, min(400, 4e11 / flops)))


def open_dawn():
    from wgpudawn.backends.dawn import extras
    extras.set_instance_extras(enable_toggles=["allow_unsafe_apis", "vulkan_enable_f16_on_nvidia"])
    import wgpudawn
    adapter = wgpudawn.gpu.request_adapter_sync(power_preference="high-performance")
    feats = [f for f in ("chromium-experimental-subgroup-matrix", "shader-f16", "subgroups") if f in adapter.features]
    device = adapter.request_device_sync(required_features=feats, required_limits={
        "max-compute-workgroup-storage-size": adapter.limits["max-compute-workgroup-storage-size"],
        "max-compute-invocations-per-workgroup": adapter.limits["max-compute-invocations-per-workgroup"],
        "max-compute-workgroup-size-x": adapter.limits["max-compute-workgroup-size-x"]})
    return wgpudawn, adapter, device


def variants():
    """(kind, src, a_t, b_t, shape): kind "gen" is staged_shader, "file" shaders/matmul_coop.wgsl (EPI 0)."""
    kinds = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--only=")] or ["file", "gen"]
    for kind in kinds:
        for a_t, b_t in ((False, False), (False, True), (True, False)):
            for shape in SHAPES:
                if kind == "gen" and shape[4] == 64:
                    continue
                yield kind, "f32", a_t, b_t, shape
    for shape in SHAPES[:3] if "gen" in kinds else ():
        yield "gen", "f16", False, False, shape


def file_pipeline(device, a_t, b_t, shape, epi=0):
    wy, wx, rt, ct, bk = shape
    from pyscript_app.gpu.registry import shader_source  # its include lines expanded
    code = shader_source("matmul_coop.wgsl")
    module = device.create_shader_module(code=code)
    constants = {"WY": wy, "WX": wx, "RT": rt, "CT": ct, "BK": bk, "A_T": int(a_t), "B_T": int(b_t), "EPI": epi}
    return device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "matmul_coop",
                                                                  "constants": constants})


def make_pipeline(device, kind, src, a_t, b_t, shape):
    if kind == "file":
        return file_pipeline(device, a_t, b_t, shape)
    return compile_one(device, staged_shader(src, a_t, b_t, *shape))


def compile_one(device, code):
    module = device.create_shader_module(code=code)
    return device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})


def validate() -> int:
    wgpudawn, adapter, device = open_dawn()
    bad = 0
    for kind, src, a_t, b_t, shape in variants():
        try:
            make_pipeline(device, kind, src, a_t, b_t, shape)
        except Exception as e:
            bad += 1
            print(kind, src, a_t, b_t, shape, str(e)[:600])
    print("compiled", "all" if not bad else f"all but {bad}")
    return 1 if bad else 0


def main() -> int:
    out: dict = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv)}
    wgpudawn, adapter, device = open_dawn()
    out["adapter"] = {k: adapter.info.get(k) for k in ("device", "description", "backend_type")}
    rng = np.random.default_rng(0)
    rows = out["variants"] = []
    t_start = time.perf_counter()
    epilogue_check(device, wgpudawn, out)
    for kind, src, a_t, b_t, shape in variants():
        wy, wx, rt, ct, bk = shape
        bm, bn = wy * rt * 16, wx * ct * 16
        row = {"kind": kind, "src": src, "a_t": a_t, "b_t": b_t, "WY": wy, "WX": wx, "RT": rt, "CT": ct, "BK": bk, "block": [bm, bn]}
        rows.append(row)
        dtype = np.float16 if src == "f16" else np.float32
        try:
            pipeline = make_pipeline(device, kind, src, a_t, b_t, shape)
            n, k, m = 2 * bm, 4 * bk, 2 * bn
            a, b, sa, sb = operands(rng, n, k, m, a_t, b_t, dtype)
            got, _ = run_gemm(device, wgpudawn, pipeline, sa, sb, n, k, m, bm, bn, 0, file=kind == "file")
            ref = a.astype(np.float16).astype(np.float64) @ b.astype(np.float16).astype(np.float64)
            row["rel_err"] = float(np.abs(got - ref).max() / np.abs(ref).max())
            if row["rel_err"] > 1e-5:
                continue
            shapes = [("4096", 4096, 4096, 4096)] if not (a_t or b_t) else []
            shapes += [(nm, N, K, M) for nm, N, K, M, at, bt in LARGE if (at, bt) == (a_t, b_t)]
            for nm, N, K, M in shapes:
                if N % bm or M % bn or K % bk:
                    continue
                _, _, sa, sb = operands(rng, N, K, M, a_t, b_t, dtype)
                _, ms = run_gemm(device, wgpudawn, pipeline, sa, sb, N, K, M, bm, bn, reps_for(2 * N * K * M),
                                 file=kind == "file")
                row[f"tflops_{nm}"] = 2 * N * K * M / ms / 1e9
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"[:800]
        print(json.dumps(row), flush=True)
        if time.perf_counter() - t_start > 100:
            out["stopped_early"] = True
            break
    torch_part(out)
    json.dump(out, open(sys.argv[1], "w"), indent=1)
    return 0


def epilogue_check(device, wgpudawn, out: dict) -> None:
    """shaders/matmul_coop.wgsl's epilogues and scales on a shape with ragged edges, against numpy."""
    rng = np.random.default_rng(1)
    res = out["epilogues"] = {}
    N, K, M = 200, 84, 136  # not multiples of the block or of BK
    for epi in range(4):
        for a_t, b_t in ((False, False), (False, True), (True, False)):
            name = f"EPI{epi}_{'AT' if a_t else ''}{'BT' if b_t else ''}"
            try:
                a, b, sa, sb = operands(rng, N, K, M, a_t, b_t, np.float32)
                e = rng.standard_normal((N, M)).astype(np.float32)
                scales = (2.0 ** 10, 1.0, 2.0 ** -10) if b_t else (1.0, 2.0 ** 10, 2.0 ** -10)
                pipeline = file_pipeline(device, a_t, b_t, (2, 2, 2, 2, 32), epi)
                got, _ = run_gemm(device, wgpudawn, pipeline, sa, sb, N, K, M, 64, 64, 0, file=True, e=e, scales=scales)
                r = (a * scales[0]).astype(np.float16).astype(np.float64) @ (b * scales[1]).astype(np.float16).astype(np.float64)
                r *= scales[2]
                want = [r, np.maximum(r, 0), e + r, r * (e > 0)][epi]
                res[name] = float(np.abs(got - want).max() / np.abs(want).max())
            except Exception as ex:
                res[name] = f"{type(ex).__name__}: {ex}"[:600]
    print(json.dumps(res), flush=True)


def torch_part(out: dict) -> None:
    """PyTorch on the same GPU: each shape in fp32 (TF32 off), bf16 and f16; `large`'s training step
    in fp32 and under bf16 autocast (AMP), timed as tabgpt bench times it."""
    try:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        res = out["torch"] = {}
        for nm, N, K, M in [("4096", 4096, 4096, 4096)] + [(nm, N, K, M) for nm, N, K, M, *_ in LARGE]:
            for dt in (torch.float32, torch.bfloat16, torch.float16):
                x = torch.randn(N, K, device="cuda", dtype=dt)
                w = torch.randn(K, M, device="cuda", dtype=dt)
                reps = reps_for(2 * N * K * M)
                x @ w
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(reps):
                    x @ w
                torch.cuda.synchronize()
                res[f"tflops_{nm}_{str(dt).split('.')[-1]}"] = 2 * N * K * M * reps / (time.perf_counter() - t0) / 1e12
        sys.path.insert(0, ".")
        from pyscript_app.config import TrainConfig, preset
        from pyscript_app.reference.init import init_params
        from pyscript_app.reference.torch_model import TorchGPT
        cfg, tc = preset("large"), TrainConfig()
        r = np.random.default_rng(0)
        idx = r.integers(0, cfg.vocab_size, size=(8, cfg.block_size + 1))
        x, y = idx[:, :-1], idx[:, 1:]
        for amp in (False, True):
            m = TorchGPT(cfg, init_params(cfg, 1), device="cuda")
            opt = m.make_optimizer(1e-3, beta1=tc.beta1, beta2=tc.beta2, eps=tc.adam_eps, weight_decay=tc.weight_decay)
            params = list(m.params.values())

            def step():
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    _, loss = m.forward(x, y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
                opt.step()

            for _ in range(3):
                step()
            torch.cuda.synchronize()
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                for _ in range(20):
                    step()
                torch.cuda.synchronize()
                runs.append((time.perf_counter() - t0) * 1e3 / 20)
            res[f"large_step_ms_{'amp_bf16' if amp else 'fp32'}"] = float(np.median(runs))
        print(json.dumps(res), flush=True)
    except Exception as e:
        out["torch_error"] = f"{type(e).__name__}: {e}"[:800]


if __name__ == "__main__":
    sys.exit(validate() if "--validate" in sys.argv else main())
