"""GEMM probe (an experiment, not a project kernel): a candidate design for shaders/matmul.wgsl's next
version, timed against PyTorch fp32 (TF32 off) on the same GPU under Dawn.

The candidate: 128 x 128 outputs per workgroup of 16 x 16 invocations, 8 x 8 outputs each in 16 named
vec4 accumulators (as matmul.wgsl), but the operands bound as array<vec4<f32>> (one 16-byte load per
global read; needs K and M multiples of 4 and, in this probe, N and M multiples of 128), the next
k-slice prefetched into registers while the current one is multiplied, and two workgroup-memory
buffers so each k-slice needs one barrier instead of two. BK = k-slice depth (8 or 16). The WGSL is
generated here by Python only because this is a throwaway probe; a project kernel uses overrides.

    python3 benchmarks/probes/gemm_vec4_probe.py OUT.json     # on the GPU machine, wgpudawn + torch
    python3 benchmarks/probes/gemm_vec4_probe.py --print 16   # print the WGSL

Seen on an H200 (2026-11-22, benchmarks/results/gemm-vec4-probe-h200-dawn-2026-11-22.json): BK=16 at
4096^3 31.2 TFLOP/s = 0.61x PyTorch (matmul.wgsl: 24.8 = 0.50x in the same session); BK=8 at
2048x512x2048 (large fc) 31.9 = 0.69x (matmul.wgsl 15.6); shapes with few 128 x 128 tiles
(2048x2048x512: 64 workgroups for 132 SMs) stay at ~0.33x: they need split-K or smaller tiles."""
import json, sys, time
import numpy as np


def kernel(BK: int, vec4_loads: bool = True, swizzle: bool = False) -> str:
    la = BK // 8   # A vec4 loads per thread: 128 rows x BK k = 32*BK vec4 / 256 threads
    lb = BK // 8   # B: BK rows x 32 vec4 / 256
    acc = [f"c{i}{h}" for i in range(8) for h in "ab"]
    s = []
    s.append("struct P { N: u32, K: u32, M: u32, pad: u32 };")
    elem = "vec4<f32>" if vec4_loads else "f32"
    s.append(f"@group(0) @binding(0) var<storage, read> A: array<{elem}>;")
    s.append(f"@group(0) @binding(1) var<storage, read> B: array<{elem}>;")
    if not vec4_loads:  # the same loads as four scalar reads (array<f32> bindings, as matmul.wgsl)
        s.append("fn ld4a(i: u32) -> vec4<f32> { let j = i * 4u; return vec4<f32>(A[j], A[j + 1u], A[j + 2u], A[j + 3u]); }")
        s.append("fn ld4b(i: u32) -> vec4<f32> { let j = i * 4u; return vec4<f32>(B[j], B[j + 1u], B[j + 2u], B[j + 3u]); }")
    s.append("@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;")
    s.append("@group(0) @binding(3) var<uniform> p: P;")
    s.append(f"var<workgroup> As: array<vec4<f32>, {2 * BK * 33}>;")
    s.append(f"var<workgroup> Bs: array<vec4<f32>, {2 * BK * 32}>;")
    s.append("@compute @workgroup_size(16, 16)")
    s.append("fn main(@builtin(workgroup_id) wid0: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32, @builtin(local_invocation_id) lid: vec3<u32>) {")
    if swizzle:  # walk the tiles in groups of 8 tile-rows, column by column, so neighbours share A and B in L2
        s.append("  let pid = wid0.y * nwg.x + wid0.x; let per = 8u * nwg.x; let g = pid / per;")
        s.append("  let rows = min(8u, nwg.y - g * 8u); let r = pid % per;")
        s.append("  let wid = vec2<u32>(r / rows, g * 8u + r % rows);")
    else:
        s.append("  let wid = wid0.xy;")
    s.append("  let row0 = wid.y * 128u; let col04 = wid.x * 32u; let K4 = p.K / 4u; let M4 = p.M / 4u;")
    s.append("  let tx = lid.x; let ty = lid.y;")
    for v in acc:
        s.append(f"  var {v} = vec4<f32>(0.0);")
    # A loads: element e = tid + l*256 over (128 rows x BK/4 quads): row = e / (BK/4), quad = e % (BK/4)
    q = BK // 4
    for l in range(la):
        s.append(f"  let ar{l} = (tid + {l * 256}u) / {q}u; let aq{l} = (tid + {l * 256}u) % {q}u;")
        s.append(f"  var ra{l} = A[(row0 + ar{l}) * K4 + aq{l}];")
    for l in range(lb):
        s.append(f"  let bk{l} = (tid + {l * 256}u) / 32u; let bc{l} = (tid + {l * 256}u) % 32u;")
        s.append(f"  var rb{l} = B[bk{l} * M4 + col04 + bc{l}];")

    def store(buf):
        out = []
        for l in range(la):
            for j, comp in enumerate("xyzw"):
                out.append(f"    As[{buf} + (aq{l} * 4u + {j}u) * 33u + ar{l} / 4u][ar{l} % 4u] = ra{l}.{comp};")
        for l in range(lb):
            out.append(f"    Bs[{buf.replace('33', '32')} + bk{l} * 32u + bc{l}] = rb{l};")
        return out
    s.append("  {")
    s += store("0u")
    s.append("  }")
    s.append("  workgroupBarrier();")
    s.append(f"  let ntiles = p.K / {BK}u;")
    s.append("  for (var t = 0u; t < ntiles; t++) {")
    s.append(f"    let cur = t & 1u; let abase = cur * {BK * 33}u; let bbase = cur * {BK * 32}u;")
    s.append("    let more = t + 1u < ntiles;")
    s.append("    if (more) {")
    s.append(f"      let k4 = (t + 1u) * {q}u; let kr = (t + 1u) * {BK}u;")
    for l in range(la):
        s.append(f"      ra{l} = A[(row0 + ar{l}) * K4 + k4 + aq{l}];")
    for l in range(lb):
        s.append(f"      rb{l} = B[(kr + bk{l}) * M4 + col04 + bc{l}];")
    s.append("    }")
    s.append(f"    for (var k = 0u; k < {BK}u; k++) {{")
    s.append("      let a0 = As[abase + k * 33u + ty]; let a1 = As[abase + k * 33u + 16u + ty];")
    s.append("      let b0 = Bs[bbase + k * 32u + tx]; let b1 = Bs[bbase + k * 32u + 16u + tx];")
    for i in range(8):
        a = "a0" if i < 4 else "a1"
        comp = "xyzw"[i % 4]
        s.append(f"      c{i}a = fma(vec4<f32>({a}.{comp}), b0, c{i}a); c{i}b = fma(vec4<f32>({a}.{comp}), b1, c{i}b);")
    s.append("    }")
    s.append("    if (more) {")
    s.append(f"      let nb = (1u - cur) * {BK * 33}u; let nbb = (1u - cur) * {BK * 32}u;")
    for l in range(la):
        for j, comp in enumerate("xyzw"):
            s.append(f"      As[nb + (aq{l} * 4u + {j}u) * 33u + ar{l} / 4u][ar{l} % 4u] = ra{l}.{comp};")
    for l in range(lb):
        s.append(f"      Bs[nbb + bk{l} * 32u + bc{l}] = rb{l};")
    s.append("    }")
    s.append("    workgroupBarrier();")
    s.append("  }")
    for i in range(8):
        r = f"row0 + {'64u + ' if i >= 4 else ''}ty * 4u + {i % 4}u"
        s.append(f"  C[({r}) * M4 + col04 + tx] = c{i}a; C[({r}) * M4 + col04 + 16u + tx] = c{i}b;")
    s.append("}")
    code = "\n".join(s)
    if not vec4_loads:
        import re
        code = re.sub(r"= A\[(.*?)\];", r"= ld4a(\1);", code)
        code = re.sub(r"= B\[(.*?)\];", r"= ld4b(\1);", code)
    return code


def run(wgpu, dev, code, N, K, M, reps, A, B):
    U = wgpu.BufferUsage
    ba = dev.create_buffer_with_data(data=A, usage=U.STORAGE)
    bb = dev.create_buffer_with_data(data=B, usage=U.STORAGE)
    bc = dev.create_buffer(size=N * M * 4, usage=U.STORAGE | U.COPY_SRC)
    bd = dev.create_buffer_with_data(data=np.array([N, K, M, 0], np.uint32), usage=U.UNIFORM)
    sm = dev.create_shader_module(code=code)
    pl = dev.create_compute_pipeline(layout="auto", compute={"module": sm, "entry_point": "main"})
    bg = dev.create_bind_group(layout=pl.get_bind_group_layout(0), entries=[{"binding": i, "resource": {"buffer": b}} for i, b in enumerate([ba, bb, bc, bd])])
    def go(k):
        enc = dev.create_command_encoder(); p = enc.begin_compute_pass(); p.set_pipeline(pl); p.set_bind_group(0, bg)
        for _ in range(k):
            p.dispatch_workgroups(M // 128, N // 128)
        p.end(); dev.queue.submit([enc.finish()])
        return dev.queue.read_buffer(bc, size=16)
    go(2)
    ts = []
    for _ in range(3):
        t = time.perf_counter(); go(reps); ts.append((time.perf_counter() - t) / reps)
    dt = sorted(ts)[1]
    out = np.frombuffer(dev.queue.read_buffer(bc), np.float32).reshape(N, M)
    rows = np.r_[0:128, N - 128:N]  # the first and last row of tiles (a wrong tile order misses one)
    ref = A[rows].astype(np.float64) @ B.astype(np.float64)
    err = float(np.abs(out[rows] - ref).max() / np.abs(ref).max())
    return {"ms": dt * 1e3, "tflops": 2 * N * K * M / dt / 1e12, "rel_err": err}


def main():
    import wgpudawn as wgpu
    ad = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    dev = ad.request_device_sync(required_limits={"max-storage-buffer-binding-size": ad.limits["max-storage-buffer-binding-size"], "max-buffer-size": ad.limits["max-buffer-size"]})
    shapes = [(4096, 4096, 4096, 10), (2048, 512, 2048, 50), (2048, 2048, 512, 50), (2048, 512, 1536, 50), (1024, 256, 1024, 100)]
    res = {"adapter": str(dict(ad.info)), "shapes": []}
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    for N, K, M, reps in shapes:
        rng = np.random.default_rng(0)
        A = rng.standard_normal((N, K), dtype=np.float32); B = rng.standard_normal((K, M), dtype=np.float32)
        row = {"N": N, "K": K, "M": M}
        for BK, v4, sw in ((8, True, False), (16, True, False), (16, False, False), (32, True, False), (16, True, True)):
            name = f"bk{BK}" + ("" if v4 else "_scalar_loads") + ("_swizzle" if sw else "")
            try:
                row[name] = run(wgpu, dev, kernel(BK, v4, sw), N, K, M, reps, A, B)
            except Exception as e:
                row[name] = f"failed: {type(e).__name__}: {str(e)[:400]}"
        a = torch.from_numpy(A).cuda(); b = torch.from_numpy(B).cuda()
        for _ in range(3): a @ b
        torch.cuda.synchronize(); ts = []
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(reps): a @ b
            torch.cuda.synchronize(); ts.append((time.perf_counter() - t) / reps)
        dt = sorted(ts)[1]
        row["torch"] = {"ms": dt * 1e3, "tflops": 2 * N * K * M / dt / 1e12}
        print(json.dumps(row), flush=True)
        res["shapes"].append(row)
    if len(sys.argv) > 1:
        json.dump(res, open(sys.argv[1], "w"), indent=1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--print":
        print(kernel(int(sys.argv[2]), len(sys.argv) < 4))
    else:
        main()
