"""What kind of adapter a browser's WebGPU gives us, from what it says about itself.

Native engines report an adapter type (DiscreteGPU, IntegratedGPU, CPU); WebGPU in a browser does
not, only vendor / architecture / device / description and isFallbackAdapter. The matmul, split,
rmsnorm and attention choice rules (matmul_rules.is_gpu_adapter) key on the type, so without this a
browser on a real GPU would get the CPU adapters' choices. Chrome's WebGPU is Dawn, the engine those
rules were measured on natively.

    browser_adapter_type({"vendor": "nvidia", "architecture": "ampere", ...})   # "DiscreteGPU"
    browser_adapter_type({"vendor": "google", "architecture": "swiftshader"})   # "CPU"

Pure Python (no `js`): webgpu_executor.adapter_info calls it in the page; tests call it natively.
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


def browser_adapter_type(info: Mapping[str, object]) -> str:
    """"CPU" for a fallback or software adapter, "DiscreteGPU" / "IntegratedGPU" by a known GPU
    vendor, else "Unknown" (which keeps the CPU adapters' choices: safe everywhere)."""
    if info.get("fallback"):
        return "CPU"
    text = " ".join(str(info.get(k) or "") for k in ("vendor", "architecture", "device", "description")).lower()
    if any(marker in text for marker in SOFTWARE_MARKERS):
        return "CPU"
    vendor = str(info.get("vendor") or "").strip().lower()
    if vendor in DISCRETE_VENDORS:
        return "DiscreteGPU"
    if vendor in INTEGRATED_VENDORS:
        return "IntegratedGPU"
    return "Unknown"
