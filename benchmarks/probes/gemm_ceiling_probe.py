"""Question: where does each GEMM's time go, on the matrix units and in f32? `shaders/matmul_coop.wgsl`
reaches about 60-66 TFLOP/s at 4096^3 on an H100 where PyTorch's f16 GEMM reaches about 700: is the
limit the matrix units as Dawn -> Vulkan -> the driver expose them, the subgroup matrix loads from
workgroup memory, or the staging (f32 global loads, rounding to f16, stores into workgroup memory,
barriers)? And the f32 GEMM (0.6-0.7x PyTorch fp32): its inner loop, or the rest?

    python3 benchmarks/probes/gemm_ceiling_probe.py OUT.json          # on the GPU
    WGPU_BACKEND_TYPE=Null python3 benchmarks/probes/gemm_ceiling_probe.py --validate   # WGSL only

Matrix-unit kernels, each a (WY x WX subgroups) workgroup whose subgroups own RT x CT result tiles of 16 x 16 (f16 in,
f32 or f16 accumulated), all in one run, timed in interleaved rounds after a warm-up:
  - `regs`: the operand tiles loaded once into subgroup matrices, then ITERS rounds of RT x CT
    multiply-accumulates: the matrix units' rate with no memory traffic;
  - `shared`: each round loads its RT + CT operand tiles from workgroup memory (the staged GEMM's block
    layout: A rows of BK + 8 halves, B rows of BN + 8), filled once: loads plus multiplies, no staging;
  - `gen f32` / `gen f16`: the staged probe's generated 4096^3 GEMM (coop_staged_probe.staged_shader,
    the design of shaders/matmul_coop.wgsl) on coop_rules' 128 x 128 block, with f32 or f16 operands in
    global memory: the whole GEMM, and what rounding while staging costs;
  - the same question for the f32 FMA kernels (`f32 fma regs` / `f32 fma shared`: matmul_tiles.wgsl's
    inner loop on a 128 x 128 tile with operands in registers, or read from workgroup memory filled once;
    `f32 gemm`: gemm_core_probe's stand-alone GEMM, the project's design without its generic code);
  - PyTorch's f16, bf16 and f32 (TF32 off) 4096^3 in the same process."""
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from coop_staged_probe import open_dawn, operands, staged_shader  # noqa: E402

ITERS = 2048          # multiply rounds per subgroup in `regs` and `shared`
GROUPS = 132 * 8      # workgroups per dispatch: several per SM of an H100
ROUNDS = 3            # interleaved timing rounds; the best of each kernel is kept
TARGET_S = 0.05       # each timing lasts about this long


def ceiling_shader(kind: str, wy: int, wx: int, rt: int, ct: int, acc: str = "f32", bk: int = 32) -> str:
    """WGSL of a `regs` or `shared` kernel. Bindings: 0 src (f16 operands, read), 1 out (the results,
    read_write), 2 dims (x = rounds). Every subgroup stores its RT x CT tiles at its own place in out."""
    threads = 32 * wy * wx
    bm, bn = wy * rt * 16, wx * ct * 16
    a_stride, b_stride = bk + 8, bn + 8
    L = ["enable f16;", "enable chromium_experimental_subgroup_matrix;",
         "diagnostic(off, chromium.subgroup_matrix_uniformity);",
         "@group(0) @binding(0) var<storage, read> src: array<f16>;",
         f"@group(0) @binding(1) var<storage, read_write> out: array<{acc}>;",
         "@group(0) @binding(2) var<uniform> dims: vec4<u32>;",
         "alias L = subgroup_matrix_left<f16, 16, 16>;",
         "alias R = subgroup_matrix_right<f16, 16, 16>;",
         f"alias Cm = subgroup_matrix_result<{acc}, 16, 16>;"]
    if kind == "shared":
        L += [f"var<workgroup> a_sh: array<f16, {bm * a_stride}>;",
              f"var<workgroup> b_sh: array<f16, {bk * b_stride}>;"]
    L += [f"@compute @workgroup_size({threads})",
          "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {",
          "  let sg = lid / 32u;",
          f"  let sr = (sg / {wx}u) * {rt * 16}u; let sc = (sg % {wx}u) * {ct * 16}u;"]
    L += [f"  var c{i}_{j} = Cm();" for i in range(rt) for j in range(ct)]
    if kind == "regs":
        L += [f"  let a{i} = subgroupMatrixLoad<L>(&src, {i * 256}u, false, 16u);" for i in range(rt)]
        L += [f"  let b{j} = subgroupMatrixLoad<R>(&src, {4096 + j * 256}u, false, 16u);" for j in range(ct)]
        L.append("  for (var t = 0u; t < dims.x; t++) {")
        L += [f"    c{i}_{j} = subgroupMatrixMultiplyAccumulate(a{i}, b{j}, c{i}_{j});"
              for i in range(rt) for j in range(ct)]
        L.append("  }")
    else:
        L += [f"  for (var e = lid; e < {bm * a_stride}u; e += {threads}u) {{ a_sh[e] = src[e % 8192u]; }}",
              f"  for (var e = lid; e < {bk * b_stride}u; e += {threads}u) {{ b_sh[e] = src[(e + 77u) % 8192u]; }}",
              "  workgroupBarrier();",
              "  for (var t = 0u; t < dims.x; t++) {",
              f"    let kk = (t % {bk // 16}u) * 16u;"]
        L += [f"    let b{j} = subgroupMatrixLoad<R>(&b_sh, kk * {b_stride}u + sc + {j * 16}u, false, {b_stride}u);"
              for j in range(ct)]
        for i in range(rt):
            L.append(f"    let a{i} = subgroupMatrixLoad<L>(&a_sh, (sr + {i * 16}u) * {a_stride}u + kk, false, {a_stride}u);")
            L += [f"    c{i}_{j} = subgroupMatrixMultiplyAccumulate(a{i}, b{j}, c{i}_{j});" for j in range(ct)]
        L.append("  }")
    L.append(f"  let base = (wid.x * {wy * wx}u + sg) * {rt * ct * 256}u;")
    L += [f"  subgroupMatrixStore(&out, base + {(i * ct + j) * 256}u, c{i}_{j}, false, 16u);"
          for i in range(rt) for j in range(ct)]
    L.append("}")
    return "\n".join(L)


def fma_shader(kind: str, rows: int, cols: int, warp_x: int) -> str:
    """WGSL of an f32 FMA kernel shaped like matmul_tiles.wgsl's inner loop: a 128 x 128 tile, each
    invocation owning rows x cols outputs (quads of 4 x 4 spread over the tile, named vec4 accumulators).
    `shared`: every k-step reads its quads of A and B from the two k-major workgroup buffers (8 k-rows each,
    rows of 33 vec4, filled once) and does rows * cols FMAs, 16 k-steps per round; `regs`: the same FMAs
    on operands loaded once. warp_x: invocations along x within a 32-wide subgroup (0: row-major
    invocation order, as the project's kernels). Bindings: 0 src (vec4, read), 1 out (vec4), 2 dims
    (x = rounds)."""
    qr, qc = rows // 4, cols // 4
    tx_n, ty_n = 128 // cols, 128 // rows
    threads = tx_n * ty_n
    row4 = 33
    L = ["@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;",
         "@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;",
         "@group(0) @binding(2) var<uniform> dims: vec4<u32>;"]
    if kind == "shared":
        L += [f"var<workgroup> a_tile: array<vec4<f32>, {16 * row4}>;",
              f"var<workgroup> b_tile: array<vec4<f32>, {16 * row4}>;"]
    L += [f"@compute @workgroup_size({threads})",
          "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {"]
    if warp_x:
        L += ["  let lane = lid & 31u; let warp = lid >> 5u;",
              f"  let tx = (warp % {tx_n // warp_x}u) * {warp_x}u + lane % {warp_x}u;",
              f"  let ty = (warp / {tx_n // warp_x}u) * {32 // warp_x}u + lane / {warp_x}u;"]
    else:
        L += [f"  let tx = lid % {tx_n}u; let ty = lid / {tx_n}u;"]
    acc = [f"c{g}_{i}_{h}" for g in range(qr) for i in range(4) for h in range(qc)]
    L += [f"  var {c} = vec4<f32>(0.0);" for c in acc]
    body = []
    if kind == "shared":
        L += [f"  for (var e = lid; e < {16 * row4}u; e += {threads}u) {{ a_tile[e] = src[e % 1024u]; b_tile[e] = src[(e + 7u) % 1024u]; }}",
              "  workgroupBarrier();"]
        for k in range(16):
            body += [f"    let a{k}_{g} = a_tile[{k * row4 + g * (32 // qr)}u + ty];" for g in range(qr)]
            body += [f"    let b{k}_{h} = b_tile[{k * row4 + h * (32 // qc)}u + tx];" for h in range(qc)]
            body += [f"    c{g}_{i}_{h} = fma(vec4<f32>(a{k}_{g}[{i}]), b{k}_{h}, c{g}_{i}_{h});"
                     for g in range(qr) for i in range(4) for h in range(qc)]
    else:
        L += [f"  let a0_{g} = src[(ty + {g * 32}u) % 1024u];" for g in range(qr)]
        L += [f"  let b0_{h} = src[(tx + {h * 32 + 7}u) % 1024u];" for h in range(qc)]
        for _ in range(16):
            body += [f"    c{g}_{i}_{h} = fma(vec4<f32>(a0_{g}[{i}]), b0_{h}, c{g}_{i}_{h});"
                     for g in range(qr) for i in range(4) for h in range(qc)]
    L += ["  for (var t = 0u; t < dims.x; t++) {"] + body + ["  }"]
    L += [f"  out[(wid.x * {threads}u + lid) * {len(acc)}u + {q}u] = {c};" for q, c in enumerate(acc)]
    L.append("}")
    return "\n".join(L)


# (kind, rows, cols, warp_x) of the f32 FMA kernels
FMA = [("regs", 8, 8, 0), ("shared", 8, 8, 0), ("shared", 8, 8, 8), ("shared", 16, 8, 0), ("regs", 16, 8, 0)]
FMA_ROUNDS = 256  # rounds of 16 k-steps per invocation


def fma_runner(device, wgpu, code, rows, cols):
    """(run(n), flops per dispatch) for an FMA kernel."""
    module = device.create_shader_module(code=code)
    pipeline = device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
    usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
    threads = (128 // rows) * (128 // cols)
    src = device.create_buffer_with_data(
        data=(np.random.default_rng(0).standard_normal(4096) * 0.01).astype(np.float32).tobytes(), usage=usage)
    out = device.create_buffer(size=GROUPS * threads * rows * cols * 4, usage=usage)
    dims = device.create_buffer_with_data(data=np.array([FMA_ROUNDS, 0, 0, 0], np.uint32).tobytes(),
                                          usage=wgpu.BufferUsage.UNIFORM)
    return dispatcher(device, pipeline, (src, out, dims), out, (GROUPS, 1, 1)), 2.0 * GROUPS * threads * rows * cols * 16 * FMA_ROUNDS


def dispatcher(device, pipeline, buffers, wait_on, grid):
    """run(n): n dispatches of the grid (x, y, z workgroups) in one pass, then a read that waits for the
    GPU. buffers: bound in order, from binding 0."""
    group = device.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=[
        {"binding": i, "resource": {"buffer": b, "offset": 0, "size": b.size}} for i, b in enumerate(buffers)])

    def run(n):
        enc = device.create_command_encoder()
        p = enc.begin_compute_pass()
        p.set_pipeline(pipeline)
        p.set_bind_group(0, group)
        for _ in range(n):
            p.dispatch_workgroups(*grid)
        p.end()
        device.queue.submit([enc.finish()])
        device.queue.read_buffer(wait_on, 0, 64)
    return run


# (kind, WY, WX, RT, CT, accumulator)
CEILING = [("regs", 1, 1, 1, 1, "f32"), ("regs", 1, 1, 2, 2, "f32"), ("regs", 1, 1, 4, 4, "f32"),
           ("regs", 2, 2, 2, 2, "f32"), ("regs", 2, 2, 4, 4, "f32"), ("regs", 2, 2, 2, 2, "f16"),
           ("shared", 2, 2, 2, 2, "f32"), ("shared", 2, 2, 4, 4, "f32"), ("shared", 2, 4, 4, 2, "f32"),
           ("shared", 4, 4, 2, 2, "f32")]
GEMM_BLOCK = (2, 2, 4, 4, 32)  # WY, WX, RT, CT, BK: coop_rules' 128 x 128 block


def ceiling_runner(device, wgpu, code, wy, wx, rt, ct, acc):
    """(run(n): n dispatches then a wait, flops per dispatch) for a `regs` / `shared` kernel."""
    module = device.create_shader_module(code=code)
    pipeline = device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
    usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
    rng = np.random.default_rng(0)
    src = device.create_buffer_with_data(data=(rng.standard_normal(8192) * 0.01).astype(np.float16).tobytes(), usage=usage)
    elem = 4 if acc == "f32" else 2
    out = device.create_buffer(size=GROUPS * wy * wx * rt * ct * 256 * elem, usage=usage)
    dims = device.create_buffer_with_data(data=np.array([ITERS, 0, 0, 0], np.uint32).tobytes(),
                                          usage=wgpu.BufferUsage.UNIFORM)
    return dispatcher(device, pipeline, (src, out, dims), out, (GROUPS, 1, 1)), 2.0 * 16 ** 3 * GROUPS * wy * wx * rt * ct * ITERS


def gemm_runner(device, wgpu, pipeline, dtype, n=4096):
    """(run(n), flops, rel_err) for a 4096^3 generated GEMM (bindings a, b, c, dims), its first 64 rows
    checked against numpy (float64 over the f16-rounded operands)."""
    rng = np.random.default_rng(1)
    a, b, sa, sb = operands(rng, n, n, n, False, False, dtype)
    wy, wx, rt, ct, bk = GEMM_BLOCK
    bm, bn = wy * rt * 16, wx * ct * 16
    usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
    ba = device.create_buffer_with_data(data=sa.tobytes(), usage=usage)
    bb = device.create_buffer_with_data(data=sb.tobytes(), usage=usage)
    bc = device.create_buffer(size=4 * n * n, usage=usage)
    bu = device.create_buffer_with_data(data=np.array([n, n, n, 0], np.uint32).tobytes(), usage=wgpu.BufferUsage.UNIFORM)
    run = dispatcher(device, pipeline, (ba, bb, bc, bu), bc, (n // bn, n // bm, 1))
    run(1)
    return run, 2.0 * n ** 3, first_rows_error(device, bc, a, b, f16=True)


def kernels(device, wgpu):
    """name -> (run, flops per call, extra fields); compile failures are recorded, not raised."""
    out, errors = {}, {}
    for kind, wy, wx, rt, ct, acc in CEILING:
        name = f"{kind} {wy}x{wx} subgroups {rt}x{ct} tiles {acc}"
        try:
            run, flops = ceiling_runner(device, wgpu, ceiling_shader(kind, wy, wx, rt, ct, acc), wy, wx, rt, ct, acc)
            out[name] = (run, flops, {})
        except Exception as e:
            errors[name] = f"{type(e).__name__}: {e}"[:600]
    for kind, rows, cols, warp_x in FMA:
        name = f"f32 fma {kind} {rows}x{cols} per invocation" + (f" warp {warp_x} wide" if warp_x else "")
        try:
            run, flops = fma_runner(device, wgpu, fma_shader(kind, rows, cols, warp_x), rows, cols)
            out[name] = (run, flops, {})
        except Exception as e:
            errors[name] = f"{type(e).__name__}: {e}"[:600]
    for rm in (8, 16):
        name = f"f32 gemm 4096^3 {rm}x8 per invocation"
        try:
            run, flops, err = fma_gemm_runner(device, wgpu, rm)
            out[name] = (run, flops, {"rel_err": err})
        except Exception as e:
            errors[name] = f"{type(e).__name__}: {e}"[:600]
    for src, dtype in (("f32", np.float32), ("f16", np.float16)):
        name = f"gen {src} 4096^3"
        try:
            run, flops, err = gemm_runner(device, wgpu, gen_pipeline(device, src), dtype)
            out[name] = (run, flops, {"rel_err": err})
        except Exception as e:
            errors[name] = f"{type(e).__name__}: {e}"[:600]
    return out, errors


def fma_gemm_runner(device, wgpu, rm, n=4096):
    """(run(n), flops, rel_err) for gemm_core_probe's stand-alone f32 GEMM (128 x 128 tiles, 8-deep
    slices, two buffers, rm x 8 outputs per invocation) at n^3, its first 64 rows checked."""
    from gemm_core_probe import gemm_wgsl
    code, _threads = gemm_wgsl(BM=128, BN=128, BK=8, RM=rm, RN=8, DB=True)
    module = device.create_shader_module(code=code)
    pipeline = device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
    rng = np.random.default_rng(2)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
    ba = device.create_buffer_with_data(data=a.tobytes(), usage=usage)
    bb = device.create_buffer_with_data(data=b.tobytes(), usage=usage)
    bc = device.create_buffer(size=4 * n * n, usage=usage)
    bu = device.create_buffer_with_data(data=np.array([n, n, n, 0, n, 1, 1, n], np.uint32).tobytes(),
                                        usage=wgpu.BufferUsage.UNIFORM)
    run = dispatcher(device, pipeline, (ba, bb, bc, bu), bc, (n // 128, n // 128, 1))
    run(1)
    return run, 2.0 * n ** 3, first_rows_error(device, bc, a, b)


def first_rows_error(device, out, a, b, f16=False) -> float:
    """Largest error of the first 64 rows of C = A @ B (read back from `out`) over the largest reference
    value, against numpy in float64 (over the f16-rounded operands when f16)."""
    n = b.shape[1]
    got = np.frombuffer(device.queue.read_buffer(out, 0, 4 * 64 * n), np.float32).reshape(64, n)
    cast = (lambda x: x.astype(np.float16).astype(np.float64)) if f16 else (lambda x: x.astype(np.float64))
    ref = cast(a[:64]) @ cast(b)
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def gen_pipeline(device, src):
    module = device.create_shader_module(code=staged_shader(src, False, False, *GEMM_BLOCK))
    return device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})


def timed(run, reps) -> float:
    t0 = time.perf_counter()
    run(reps)
    return (time.perf_counter() - t0) / reps


def main() -> int:
    if "--validate" in sys.argv:
        _, _, device = open_dawn()
        bad = 0
        for kind, wy, wx, rt, ct, acc in CEILING:
            try:
                device.create_shader_module(code=ceiling_shader(kind, wy, wx, rt, ct, acc))
            except Exception as e:
                bad += 1
                print(kind, wy, wx, rt, ct, acc, str(e)[:800])
        for kind, rows, cols, warp_x in FMA:
            try:
                device.create_shader_module(code=fma_shader(kind, rows, cols, warp_x))
            except Exception as e:
                bad += 1
                print(kind, rows, cols, warp_x, str(e)[:800])
        print("compiled", "all" if not bad else f"all but {bad}")
        return 1 if bad else 0
    result: dict = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv),
                    "iters": ITERS, "groups": GROUPS}
    wgpudawn, adapter, device = open_dawn()
    result["adapter"] = {k: adapter.info.get(k) for k in ("device", "description", "backend_type")}
    ks, result["errors"] = kernels(device, wgpudawn)
    reps = {}
    for name, (run, flops, _) in ks.items():  # compile, warm, size each timing
        run(1)
        reps[name] = max(1, int(TARGET_S / max(timed(run, 1), 1e-5)))
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.0:  # the clocks up
        for run, _, _ in ks.values():
            run(1)
    best: dict = {}
    for _ in range(ROUNDS):
        for name, (run, flops, _) in ks.items():
            s = timed(run, reps[name])
            best.setdefault(name, []).append(flops / s / 1e12)
    result["kernels"] = {name: {"tflops": max(v), "tflops_rounds": v, **ks[name][2]} for name, v in best.items()}
    for name, row in result["kernels"].items():
        print(f"{name:40s} {row['tflops']:8.1f} TFLOP/s  rounds {['%.1f' % x for x in row['tflops_rounds']]}")
    torch_peers(result)
    json.dump(result, open(sys.argv[1], "w"), indent=1)
    return 0


def torch_peers(result: dict) -> None:
    try:
        import torch
        peers = result["torch"] = {}
        for dt in (torch.float16, torch.bfloat16, torch.float32):
            torch.backends.cuda.matmul.allow_tf32 = False
            x = torch.randn(4096, 4096, device="cuda", dtype=dt)
            w = torch.randn(4096, 4096, device="cuda", dtype=dt)
            x @ w
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(20):
                x @ w
            torch.cuda.synchronize()
            peers[f"tflops_4096_{str(dt).split('.')[-1]}"] = 2 * 4096 ** 3 * 20 / (time.perf_counter() - t0) / 1e12
        print(json.dumps(peers))
    except Exception as e:
        result["torch"] = {"error": f"{type(e).__name__}: {e}"[:300]}


if __name__ == "__main__":
    sys.exit(main())
