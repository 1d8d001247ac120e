"""Driver statistics of our kernels (an experiment): what the GPU driver's compiler made of each kernel
(register count, spills, workgroup memory and the like, VK_KHR_pipeline_executable_properties), so that a
WGSL change can be judged by its code and not only by its timing.

The SPIR-V is naga's (wgpu-native's WGSL compiler, from npm's naga-wasm), not Tint's (Dawn's).
- wgpudawn 0.32 exposes no logging callback, so the SPIR-V Dawn makes (its `dump_shaders` toggle)
  cannot be caught from Python.
- The driver compiles both kinds, so the figures show what such code costs, not Dawn's exact
  pipelines.
- Override values are written into the WGSL as constants before translation; naga-wasm has no
  pipeline constants.

Two steps:

    # here (node; naga-wasm installed with `npm install --no-save --prefix NAGA_DIR naga-wasm@30.1.0`):
    python3 benchmarks/probes/vk_stats_probe.py make OUT_DIR NAGA_DIR
    # on the GPU machine (the `vulkan` wheel from PyPI carried beside cffi):
    python3 benchmarks/probes/vk_stats_probe.py run OUT_DIR OUT.json

`run` creates each compute pipeline through Vulkan (Python's `vulkan` package). Where the device has
VK_KHR_pipeline_executable_properties (NVIDIA's driver has; llvmpipe has not), it prints the driver's
statistics. Otherwise it only checks that every pipeline builds."""
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, ".")
sys.path.insert(0, str(Path(__file__).parent))

# (name, shader file, entry point (= registry kernel), overrides)
CASES = [
    ("matmul_forward_v4 128x128", "matmul_vec4.wgsl", "matmul_forward_v4", {"TM": 128, "TN": 128}),
    ("matmul_forward_v4 64x128", "matmul_vec4.wgsl", "matmul_forward_v4", {"TM": 64, "TN": 128}),
    ("matmul_forward_v4 64x64", "matmul_vec4.wgsl", "matmul_forward_v4", {"TM": 64, "TN": 64}),
    ("matmul_forward_residual_v4 64x64", "matmul_vec4.wgsl", "matmul_forward_residual_v4", {"TM": 64, "TN": 64}),
    ("matmul_forward_residual_v4 64x64 kg2", "matmul_vec4.wgsl", "matmul_forward_residual_v4",
     {"TM": 64, "TN": 64, "KGROUPS": 2}),
    ("matmul_forward_rmsnorm_v4 128x128", "matmul_vec4.wgsl", "matmul_forward_rmsnorm_v4", {"TM": 128, "TN": 128}),
    ("matmul_backward_split_v4 128x128", "matmul_vec4.wgsl", "matmul_backward_split_v4",
     {"TM": 128, "TN": 128, "SPLIT": 4, "DX_SPLIT": 4}),
    ("matmul_backward_relu_split_v4 128x128", "matmul_vec4.wgsl", "matmul_backward_relu_split_v4",
     {"TM": 128, "TN": 128, "SPLIT": 4}),
    ("attention_rows_forward D64", "attention_rows.wgsl", "attention_rows_forward", {"D": 64, "ROWS": 64, "KT": 16}),
    ("attention_rows_backward D64", "attention_rows_backward.wgsl", "attention_rows_backward",
     {"D": 64, "ROWS": 64, "KT": 16, "QT": 8}),
    ("rmsnorm_backward gpu", "rmsnorm.wgsl", "rmsnorm_backward", {"WG": 256, "DG_COLS": 2}),
]
OVERRIDE_RE = re.compile(r"override\s+(\w+)\s*(?::\s*(\w+))?\s*=\s*([^;]+);")
NODE_SCRIPT = """import { readFileSync, writeFileSync } from "node:fs";
import { parseWgsl, validate, writeSpirv, NagaError } from "naga-wasm";
const [src, out] = process.argv.slice(2);
try {
  const module = parseWgsl(readFileSync(src, "utf8"));
  const words = writeSpirv(module, validate(module), {});
  writeFileSync(out, Buffer.from(words.buffer, words.byteOffset, words.byteLength));
} catch (e) {
  console.error(e instanceof NagaError ? e.formatted : String(e));
  process.exit(1);
}
"""


def with_constants(source: str, values: dict) -> str:
    """WGSL with every `override` turned into a `const`: the given values where named, else its default
    expression (derived overrides keep theirs: WGSL's const expressions accept the same builtins)."""
    def sub(m):
        name, ty, expr = m.group(1), m.group(2) or "u32", m.group(3)
        if name in values:
            v = values[name]
            expr = f"{v}u" if ty == "u32" else (f"{v}i" if ty == "i32" else repr(float(v)))
        return f"const {name}: {ty} = {expr};"
    return OVERRIDE_RE.sub(sub, source)


def gemm_core_case():
    """The stand-alone GEMM of gemm_core_probe.py (35 TFLOP/s at 4096^3 on the H200), for comparison."""
    from gemm_core_probe import gemm_wgsl
    src, _ = gemm_wgsl(BM=128, BN=128, BK=8, RM=8, RN=8, DB=True)
    bindings = [("A", "read"), ("B", "read"), ("C", "read_write"), ("d", "uniform")]
    return "gemm_core t128_r8x8_k8_db", src, "main", bindings


def make(out_dir: Path, naga_dir: Path) -> None:
    from pyscript_app.gpu.registry import get, shader_source
    out_dir.mkdir(parents=True, exist_ok=True)
    script = naga_dir / "wgsl_to_spirv.mjs"
    script.write_text(NODE_SCRIPT)
    items = []
    for name, file, entry, over in CASES:
        k = get(entry)
        items.append((name, with_constants(shader_source(file), k.resolve_overrides(over)), entry, list(k.bindings)))
    items.append(gemm_core_case())
    manifest = []
    for i, (name, src, entry, bindings) in enumerate(items):
        wgsl, spv = out_dir / f"case{i}.wgsl", out_dir / f"case{i}.spv"
        wgsl.write_text(src)
        r = subprocess.run(["node", str(script), str(wgsl), str(spv)], capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"{name}: naga failed:\n{r.stderr}")
        manifest.append({"name": name, "spv": spv.name, "entry": entry, "bindings": bindings})
        print("made", name, spv.stat().st_size, "bytes")
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _stat_value(vk, s):
    f = s.format
    if f == vk.VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR:
        return bool(s.value.b32)
    if f == vk.VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR:
        return int(s.value.i64)
    if f == vk.VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
        return int(s.value.u64)
    return float(s.value.f64)


def run(out_dir: Path, out_json: Path) -> None:
    import vulkan as vk
    app = vk.VkApplicationInfo(sType=vk.VK_STRUCTURE_TYPE_APPLICATION_INFO, apiVersion=vk.VK_MAKE_VERSION(1, 2, 0))
    inst = vk.vkCreateInstance(vk.VkInstanceCreateInfo(sType=vk.VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                                       pApplicationInfo=app), None)
    devices = vk.vkEnumeratePhysicalDevices(inst)
    props = [vk.vkGetPhysicalDeviceProperties(p) for p in devices]
    pick = next((i for i, p in enumerate(props) if p.deviceType != vk.VK_PHYSICAL_DEVICE_TYPE_CPU), 0)
    phys, name = devices[pick], props[pick].deviceName
    ext = "VK_KHR_pipeline_executable_properties"
    has_stats = ext in [e.extensionName for e in vk.vkEnumerateDeviceExtensionProperties(phys, None)]
    qf = next(i for i, q in enumerate(vk.vkGetPhysicalDeviceQueueFamilyProperties(phys))
              if q.queueFlags & vk.VK_QUEUE_COMPUTE_BIT)
    queue = vk.VkDeviceQueueCreateInfo(sType=vk.VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, queueFamilyIndex=qf,
                                       queueCount=1, pQueuePriorities=[1.0])
    feature = vk.VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR(
        sType=vk.VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR,
        pipelineExecutableInfo=vk.VK_TRUE)
    device = vk.vkCreateDevice(phys, vk.VkDeviceCreateInfo(
        sType=vk.VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, pNext=feature if has_stats else None,
        queueCreateInfoCount=1, pQueueCreateInfos=[queue],
        enabledExtensionCount=1 if has_stats else 0, ppEnabledExtensionNames=[ext] if has_stats else []), None)
    if has_stats:
        get_props = vk.vkGetDeviceProcAddr(device, "vkGetPipelineExecutablePropertiesKHR")
        get_stats = vk.vkGetDeviceProcAddr(device, "vkGetPipelineExecutableStatisticsKHR")
    dtype = {"read": vk.VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, "read_write": vk.VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
             "uniform": vk.VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER}
    result = {"device": name, "statistics": has_stats, "kernels": {}}
    for case in json.loads((out_dir / "manifest.json").read_text()):
        code = (out_dir / case["spv"]).read_bytes()
        module = vk.vkCreateShaderModule(device, vk.VkShaderModuleCreateInfo(
            sType=vk.VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, codeSize=len(code), pCode=code), None)
        binds = [vk.VkDescriptorSetLayoutBinding(binding=i, descriptorType=dtype[access], descriptorCount=1,
                                                 stageFlags=vk.VK_SHADER_STAGE_COMPUTE_BIT)
                 for i, (_, access) in enumerate(case["bindings"])]
        dsl = vk.vkCreateDescriptorSetLayout(device, vk.VkDescriptorSetLayoutCreateInfo(
            sType=vk.VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, bindingCount=len(binds), pBindings=binds), None)
        layout = vk.vkCreatePipelineLayout(device, vk.VkPipelineLayoutCreateInfo(
            sType=vk.VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, setLayoutCount=1, pSetLayouts=[dsl]), None)
        stage = vk.VkPipelineShaderStageCreateInfo(sType=vk.VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                                                   stage=vk.VK_SHADER_STAGE_COMPUTE_BIT, module=module,
                                                   pName=case["entry"])
        flags = vk.VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR if has_stats else 0
        pipe = vk.vkCreateComputePipelines(device, None, 1, [vk.VkComputePipelineCreateInfo(
            sType=vk.VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO, flags=flags, stage=stage, layout=layout)], None)[0]
        stats = {}
        if has_stats:
            info = vk.VkPipelineInfoKHR(sType=vk.VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, pipeline=pipe)
            for index, _ in enumerate(get_props(device, info)):
                ex = vk.VkPipelineExecutableInfoKHR(sType=vk.VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR,
                                                    pipeline=pipe, executableIndex=index)
                for s in get_stats(device, ex):
                    key = s.name if isinstance(s.name, str) else vk.ffi.string(s.name).decode()
                    stats[f"{index}: {key}" if index else key] = _stat_value(vk, s)
        result["kernels"][case["name"]] = stats
        print(f"{case['name']:40s}", stats if stats else "built (no statistics on this device)", flush=True)
        vk.vkDestroyPipeline(device, pipe, None)
        vk.vkDestroyPipelineLayout(device, layout, None)
        vk.vkDestroyDescriptorSetLayout(device, dsl, None)
        vk.vkDestroyShaderModule(device, module, None)
    out_json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("make", "run"):
        raise SystemExit(__doc__)
    (make if sys.argv[1] == "make" else run)(Path(sys.argv[2]), Path(sys.argv[3]))
