"""What kind of adapter a browser's WebGPU gives us, from what it says about itself.

Native engines report an adapter type (DiscreteGPU, IntegratedGPU, CPU); WebGPU in a browser does
not, only vendor / architecture / device / description and isFallbackAdapter. The matmul, split,
rmsnorm and attention choice rules (matmul_rules.is_gpu_adapter) key on the type, so without this a
browser on a real GPU would get the CPU adapters' choices. Chrome's WebGPU is Dawn, the engine those
rules were measured on natively. Firefox (wgpu) leaves the four strings empty and adds wgpu's own
fields instead (wgpuDeviceType, wgpuName, ...): its wgpuDeviceType is the type wgpu-native reports
natively for the same adapter, so it is used as such.

    browser_adapter_type({"vendor": "nvidia", "architecture": "ampere", ...})   # "DiscreteGPU"
    browser_adapter_type({"vendor": "google", "architecture": "swiftshader"})   # "CPU"
    browser_adapter_type({"vendor": "", "wgpuDeviceType": "IntegratedGpu"})     # "IntegratedGPU"

Pure Python (no `js`): webgpu_executor.adapter_info calls browser_adapter_info in the page; tests
call it natively.
"""

from __future__ import annotations

from collections.abc import Mapping

# Software rasterizers, by a word of their name: Chrome's SwiftShader, Mesa's llvmpipe / lavapipe /
# softpipe, Windows' WARP ("Microsoft Basic Render Driver").
SOFTWARE_MARKERS = ("swiftshader", "llvmpipe", "lavapipe", "softpipe", "basic render")
# GPU vendors as WebGPU names them (GPUAdapterInfo.vendor). Which type a vendor gets only matters as
# "a GPU" to the rules (both types are treated alike); it is the usual kind for that vendor.
DISCRETE_VENDORS = frozenset({"nvidia", "amd", "ati"})
INTEGRATED_VENDORS = frozenset({"intel", "apple", "qualcomm", "arm", "imagination", "img-tec", "samsung", "broadcom"})
# GPUAdapterInfo's standard strings, and Firefox's wgpu fields that name the adapter and its type.
INFO_KEYS = ("vendor", "architecture", "device", "description")
WGPU_INFO_KEYS = ("wgpuName", "wgpuDeviceType", "wgpuBackend")
# wgpu's DeviceType as Firefox spells it -> the adapter type wgpu-native reports for it natively
# (a virtual GPU is not known to be one: it keeps the CPU choices).
WGPU_DEVICE_TYPES = {"DiscreteGpu": "DiscreteGPU", "IntegratedGpu": "IntegratedGPU", "Cpu": "CPU"}


def browser_adapter_type(info: Mapping[str, object]) -> str:
    """"CPU" for a fallback or software adapter; else Firefox's wgpuDeviceType where given; else
    "DiscreteGPU" / "IntegratedGPU" by a known GPU vendor; else "Unknown" (which keeps the CPU
    adapters' choices: safe everywhere)."""
    if info.get("fallback"):
        return "CPU"
    text = " ".join(str(info.get(k) or "") for k in (*INFO_KEYS, "wgpuName")).lower()
    if any(marker in text for marker in SOFTWARE_MARKERS):
        return "CPU"
    wgpu_type = str(info.get("wgpuDeviceType") or "")
    if wgpu_type:
        return WGPU_DEVICE_TYPES.get(wgpu_type, "Unknown")
    vendor = str(info.get("vendor") or "").strip().lower()
    if vendor in DISCRETE_VENDORS:
        return "DiscreteGPU"
    if vendor in INTEGRATED_VENDORS:
        return "IntegratedGPU"
    return "Unknown"


def browser_adapter_info(info: Mapping[str, object], fallback: bool) -> dict[str, object]:
    """adapter_info as the browser executor keeps it: GPUAdapterInfo's strings (and Firefox's wgpu
    fields where present), the fallback flag, and the adapter type inferred from them."""
    out: dict[str, object] = {k: str(info.get(k) or "") for k in INFO_KEYS}
    out.update({k: str(info[k]) for k in WGPU_INFO_KEYS if info.get(k)})
    out["fallback"] = bool(fallback)
    out["adapter_type"] = browser_adapter_type(out)
    out["adapter_type_from"] = "wgpuDeviceType" if out.get("wgpuDeviceType") else "vendor"
    return out
