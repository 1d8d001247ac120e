"""Question: can WGSL reach this GPU's tensor cores, through Dawn's experimental subgroup matrices
(`chromium-experimental-subgroup-matrix` behind the `allow_unsafe_apis` toggle: `subgroup_matrix_left /
right / result`, `subgroupMatrixLoad / MultiplyAccumulate / Store`) or wgpu-native's experimental
`cooperative-matrix` (naga's `coop_mat8x8<f32, A|B|C>`, `coopLoad` / `coopMultiplyAdd` / `coopStore`);
how do they round, and how fast is a plain GEMM built on them (the road to issue 22's mixed-precision
target)?

    python3 benchmarks/probes/coop_matrix_probe.py OUT.json

One subgroup (32 invocations) per workgroup computes a 2 x 2 block of the matrices' tiles of C = A @ B,
loading its operand tiles straight from global memory (no workgroup memory): a first look, not a tuned
kernel; then wider blocks of several subgroups with several tiles each (`dawn_wide_shader`). Dawn: every
f16 or f32 configuration the adapter lists with an f32 result. Checked against numpy (float64) at 256^3, timed at 4096^3 beside PyTorch fp32 (TF32
off and on). Every stage's failure is recorded, not raised."""
import json
import sys
import time

import numpy as np

SHADER = """
ENABLES

const T: u32 = TILEu;  // the cooperative matrices' side

@group(0) @binding(0) var<storage, read> a: array<IN>;         // (N,K) row-major
@group(0) @binding(1) var<storage, read> b: array<IN>;         // (K,M) row-major
@group(0) @binding(2) var<storage, read_write> c: array<f32>;  // (N,M) row-major, starts at 0
@group(0) @binding(3) var<uniform> dims: vec4<u32>;            // N, K, M, 0 (multiples of 2T)

@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wid: vec3<u32>) {
  let K = dims.y;
  let M = dims.z;
  let row = wid.y * 2u * T;
  let col = wid.x * 2u * T;
  var c00 = coopLoad<coop_matTxT<f32, C>>(&c[row * M + col], M);
  var c01 = coopLoad<coop_matTxT<f32, C>>(&c[row * M + col + T], M);
  var c10 = coopLoad<coop_matTxT<f32, C>>(&c[(row + T) * M + col], M);
  var c11 = coopLoad<coop_matTxT<f32, C>>(&c[(row + T) * M + col + T], M);
  for (var k = 0u; k < K; k += T) {
    let a0 = coopLoad<coop_matTxT<IN, A>>(&a[row * K + k], K);
    let a1 = coopLoad<coop_matTxT<IN, A>>(&a[(row + T) * K + k], K);
    let b0 = coopLoad<coop_matTxT<IN, B>>(&b[k * M + col], M);
    let b1 = coopLoad<coop_matTxT<IN, B>>(&b[k * M + col + T], M);
    c00 = coopMultiplyAdd(a0, b0, c00);
    c01 = coopMultiplyAdd(a0, b1, c01);
    c10 = coopMultiplyAdd(a1, b0, c10);
    c11 = coopMultiplyAdd(a1, b1, c11);
  }
  coopStore(c00, &c[row * M + col], M);
  coopStore(c01, &c[row * M + col + T], M);
  coopStore(c10, &c[(row + T) * M + col], M);
  coopStore(c11, &c[(row + T) * M + col + T], M);
}
"""


# name -> (T, input element type, enables, numpy input dtype, features)
VARIANTS = {
    "f32_8x8": (8, "f32", "enable wgpu_cooperative_matrix;", np.float32, ["cooperative-matrix"]),
    "f16_16x16_f32_accumulate": (16, "f16", "enable f16;\nenable wgpu_cooperative_matrix;", np.float16,
                                 ["cooperative-matrix", "shader-f16"]),
}


def shader(T: int, element: str, enables: str) -> str:
    return (SHADER.replace("ENABLES", enables).replace("TILEu", f"{T}u").replace("coop_matTxT", f"coop_mat{T}x{T}")
            .replace("<IN", f"<{element}").replace("IN,", f"{element},"))


def gemm(device, pipeline, wgpu, x, w, reps, block):
    """C = x @ w on the GPU, a block (rows, columns) of C per workgroup, `reps` dispatches in one
    submission (C zeroed once: each adds x @ w): (C after one dispatch, ms per dispatch)."""
    N, K = x.shape
    M = w.shape[1]
    usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
    ba = device.create_buffer_with_data(data=x.tobytes(), usage=usage)
    bb = device.create_buffer_with_data(data=w.tobytes(), usage=usage)
    bc = device.create_buffer(size=4 * N * M, usage=usage)
    bu = device.create_buffer_with_data(data=np.array([N, K, M, 0], np.uint32).tobytes(),
                                        usage=wgpu.BufferUsage.UNIFORM)
    group = device.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=[
        {"binding": i, "resource": {"buffer": buf, "offset": 0, "size": buf.size}} for i, buf in enumerate((ba, bb, bc, bu))])

    def run(n):
        enc = device.create_command_encoder()
        p = enc.begin_compute_pass()
        p.set_pipeline(pipeline)
        p.set_bind_group(0, group)
        for _ in range(n):
            p.dispatch_workgroups(M // block[1], N // block[0], 1)
        p.end()
        device.queue.submit([enc.finish()])
        return np.frombuffer(device.queue.read_buffer(bc, 0, 64), np.float32)  # waits for the GPU

    device.queue.write_buffer(bc, 0, np.zeros(N * M, np.float32).tobytes())
    run(1)
    first = np.frombuffer(device.queue.read_buffer(bc), np.float32).reshape(N, M).copy()
    t0 = time.perf_counter()
    run(reps)
    return first, (time.perf_counter() - t0) * 1e3 / reps


DAWN_SHADER = """
@ENABLE_F16@
enable chromium_experimental_subgroup_matrix;

@group(0) @binding(0) var<storage, read> a: array<@IN@>;         // (N,K) row-major
@group(0) @binding(1) var<storage, read> b: array<@IN@>;         // (K,M) row-major
@group(0) @binding(2) var<storage, read_write> c: array<f32>;  // (N,M) row-major, starts at 0
@group(0) @binding(3) var<uniform> dims: vec4<u32>;            // N, K, M, 0

alias L = subgroup_matrix_left<@IN@, @TK@, @TM@>;     // TM rows x TK columns of A
alias R = subgroup_matrix_right<@IN@, @TN@, @TK@>;    // TK rows x TN columns of B
alias C = subgroup_matrix_result<f32, @TN@, @TM@>;  // TM rows x TN columns of C

@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wid: vec3<u32>) {
  let K = dims.y;
  let M = dims.z;
  let row = wid.y * 2u * @TM@u;
  let col = wid.x * 2u * @TN@u;
  var c00 = C(); var c01 = C(); var c10 = C(); var c11 = C();
  for (var k = 0u; k < K; k += @TK@u) {
    let a0 = subgroupMatrixLoad<L>(&a, row * K + k, false, K);
    let a1 = subgroupMatrixLoad<L>(&a, (row + @TM@u) * K + k, false, K);
    let b0 = subgroupMatrixLoad<R>(&b, k * M + col, false, M);
    let b1 = subgroupMatrixLoad<R>(&b, k * M + col + @TN@u, false, M);
    c00 = subgroupMatrixMultiplyAccumulate(a0, b0, c00);
    c01 = subgroupMatrixMultiplyAccumulate(a0, b1, c01);
    c10 = subgroupMatrixMultiplyAccumulate(a1, b0, c10);
    c11 = subgroupMatrixMultiplyAccumulate(a1, b1, c11);
  }
  subgroupMatrixStore(&c, row * M + col, c00, false, M);
  subgroupMatrixStore(&c, row * M + col + @TN@u, c01, false, M);
  subgroupMatrixStore(&c, (row + @TM@u) * M + col, c10, false, M);
  subgroupMatrixStore(&c, (row + @TM@u) * M + col + @TN@u, c11, false, M);
}
"""


# Wider blocks: WY x WX subgroups per workgroup, each computing RT x CT result tiles held in named
# variables (operands still straight from global memory, shared through the caches): a block of
# (WY*RT*TM) x (WX*CT*TN) of C per workgroup. A subgroup's offsets depend on its index, uniform only
# within the subgroup, which is all its matrix operations need: `subgroup_uniformity` is turned off,
# and the index is broadcast from the subgroup's first invocation.
WIDE_SHAPES = ((2, 4, 1, 1), (4, 4, 1, 1), (2, 8, 1, 1), (4, 8, 1, 1), (2, 4, 2, 2), (4, 4, 2, 2))  # (RT, CT, WY, WX)


def dawn_wide_shader(element: str, m: int, n: int, k: int, rt: int, ct: int, wy: int, wx: int) -> tuple[str, int, int]:
    """The WGSL for one configuration and block shape: (code, block rows, block columns)."""
    bm, bn = wy * rt * m, wx * ct * n
    L = ["enable f16;" if element == "f16" else "", "enable chromium_experimental_subgroup_matrix;",
         "diagnostic(off, subgroup_uniformity);", "enable subgroups;" if wy * wx > 1 else "",
         f"@group(0) @binding(0) var<storage, read> a: array<{element}>;         // (N,K) row-major",
         f"@group(0) @binding(1) var<storage, read> b: array<{element}>;         // (K,M) row-major",
         "@group(0) @binding(2) var<storage, read_write> c: array<f32>;  // (N,M) row-major, starts at 0",
         "@group(0) @binding(3) var<uniform> dims: vec4<u32>;            // N, K, M, 0",
         f"alias L = subgroup_matrix_left<{element}, {k}, {m}>;",
         f"alias R = subgroup_matrix_right<{element}, {n}, {k}>;",
         f"alias C = subgroup_matrix_result<f32, {n}, {m}>;",
         f"@compute @workgroup_size({32 * wy * wx})",
         "fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {",
         "  let K = dims.y;", "  let M = dims.z;",
         # NVIDIA's subgroups are 32 wide (the numpy check catches anything else)
         f"  let sg = {'0u' if wy * wx == 1 else 'subgroupBroadcastFirst(lid / 32u)'};",
         f"  let row = wid.y * {bm}u + (sg / {wx}u) * {rt * m}u;",
         f"  let col = wid.x * {bn}u + (sg % {wx}u) * {ct * n}u;"]
    L += [f"  var c{i}_{j} = C();" for i in range(rt) for j in range(ct)]
    L.append(f"  for (var k = 0u; k < K; k += {k}u) {{")
    L += [f"    let b{j} = subgroupMatrixLoad<R>(&b, k * M + col + {j * n}u, false, M);" for j in range(ct)]
    for i in range(rt):
        L.append(f"    let a{i} = subgroupMatrixLoad<L>(&a, (row + {i * m}u) * K + k, false, K);")
        L += [f"    c{i}_{j} = subgroupMatrixMultiplyAccumulate(a{i}, b{j}, c{i}_{j});" for j in range(ct)]
    L.append("  }")
    L += [f"  subgroupMatrixStore(&c, (row + {i * m}u) * M + col + {j * n}u, c{i}_{j}, false, M);"
          for i in range(rt) for j in range(ct)]
    L.append("}")
    return "\n".join(L), bm, bn


def dawn_shader(element: str, m: int, n: int, k: int) -> str:
    """DAWN_SHADER for one configuration: element type, TM = m rows, TN = n columns, TK = k."""
    return (DAWN_SHADER.replace("@ENABLE_F16@", "enable f16;" if element == "f16" else "").replace("@IN@", element).replace("@TM@", str(m)).replace("@TN@", str(n))
            .replace("@TK@", str(k)))


def check_and_time(device, pipeline, wgpu, dtype, block_rows, block_cols, row):
    """Fill `row` with the GEMM's error at 256^3 (against float64) and its speed at 4096^3."""
    r = np.random.default_rng(0)
    x, w = (r.standard_normal((256, 256)).astype(dtype) for _ in range(2))
    got, _ = gemm(device, pipeline, wgpu, x, w, 1, (block_rows, block_cols))
    ref = x.astype(np.float64) @ w.astype(np.float64)
    row["rel_err_256"] = float(np.abs(got - ref).max() / np.abs(ref).max())
    n = 4096
    x, w = (r.standard_normal((n, n)).astype(dtype) for _ in range(2))
    _, ms = gemm(device, pipeline, wgpu, x, w, 10, (block_rows, block_cols))
    row["ms_4096"] = ms
    row["tflops_4096"] = 2 * n ** 3 / ms / 1e9


def dawn_part(out: dict) -> None:
    """Dawn's subgroup matrices: the adapter's configurations, then a GEMM on each f32-result one."""
    res = out.setdefault("dawn", {})
    try:
        from wgpudawn.backends.dawn import extras
        # before the instance exists; Dawn offers `shader-f16` (and so f16 subgroup matrices) on NVIDIA
        # only with the adapter toggle `vulkan_enable_f16_on_nvidia`
        extras.set_instance_extras(enable_toggles=["allow_unsafe_apis", "vulkan_enable_f16_on_nvidia"])
        import wgpudawn
        adapter = wgpudawn.gpu.request_adapter_sync(power_preference="high-performance")
        res["adapter"] = {k: adapter.info.get(k) for k in ("device", "description", "backend_type")}
        feature = "chromium-experimental-subgroup-matrix"
        res["has_feature"] = feature in adapter.features
        res["has_shader_f16"] = "shader-f16" in adapter.features
        res["configs"] = extras.get_adapter_properties(adapter).get("subgroup_matrix_configs")
        if not res["has_feature"]:
            return
        device = adapter.request_device_sync(required_features=[f for f in (feature, "shader-f16", "subgroups")
                                                                if f in adapter.features])
    except Exception as e:
        res["error"] = f"{type(e).__name__}: {e}"[:1500]
        return
    for cfg in res["configs"] or []:
        element = str(cfg["component_type"])
        if str(cfg["result_component_type"]) != "f32" or element not in ("f16", "f32"):
            continue
        name = f"{element}_{cfg['m']}x{cfg['n']}x{cfg['k']}"
        row = res.setdefault("variants", {}).setdefault(name, {})
        try:
            module = device.create_shader_module(code=dawn_shader(element, cfg["m"], cfg["n"], cfg["k"]))
            pipeline = device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
            row["compiled"] = True
            check_and_time(device, pipeline, wgpudawn, np.float16 if element == "f16" else np.float32,
                           2 * cfg["m"], 2 * cfg["n"], row)
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"[:1500]
        for shape in WIDE_SHAPES:
            row = res["variants"].setdefault(f"{name}_wide_{'x'.join(map(str, shape))}", {})
            try:
                code, bm, bn = dawn_wide_shader(element, cfg["m"], cfg["n"], cfg["k"], *shape)
                module = device.create_shader_module(code=code)
                pipeline = device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
                row["compiled"] = True
                check_and_time(device, pipeline, wgpudawn, np.float16 if element == "f16" else np.float32, bm, bn, row)
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {e}"[:1500]


def main() -> int:
    import wgpu
    out: dict = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "wgpu": wgpu.__version__}
    dawn_part(out)
    try:
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
        out["adapter"] = {k: adapter.info.get(k) for k in ("device", "description", "backend_type")}
        out["features"] = sorted(adapter.features)
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
        adapter = None
    for name, (T, element, enables, dtype, features) in VARIANTS.items() if adapter else ():
        row = out.setdefault("variants", {}).setdefault(name, {})
        try:
            device = adapter.request_device_sync(required_features=[f for f in features if f in adapter.features])
            module = device.create_shader_module(code=shader(T, element, enables))
            pipeline = device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
            row["compiled"] = True
            check_and_time(device, pipeline, wgpu, dtype, 2 * T, 2 * T, row)
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"[:1500]
    out["numpy_f32_rel_err_256"] = (lambda x, w: float(np.abs(x @ w - x.astype(np.float64) @ w).max()
                                                         / np.abs(x.astype(np.float64) @ w).max()))(
        *(np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32) for _ in range(2)))
    try:
        import torch

        def torch_tflops(y) -> float:  # y @ y at 4096^3, 10 runs after a warm one
            y @ y
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(10):
                y @ y
            torch.cuda.synchronize()
            return 2 * 4096 ** 3 / ((time.perf_counter() - t0) * 1e2) / 1e9

        x = torch.randn(4096, 4096, device="cuda")
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            out[f"torch_tflops_4096_tf32_{'on' if tf32 else 'off'}"] = torch_tflops(x)
        for dtype in (torch.float16, torch.bfloat16):  # the mixed-precision peer's products
            out[f"torch_tflops_4096_{str(dtype).split('.')[-1]}"] = torch_tflops(x.to(dtype))
    except Exception as e:
        out["torch_error"] = f"{type(e).__name__}: {e}"
    print(json.dumps({k: v for k, v in out.items() if k != "features"}, indent=1))
    json.dump(out, open(sys.argv[1], "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
