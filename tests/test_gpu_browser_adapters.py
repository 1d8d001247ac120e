"""gpu/browser_adapters: the adapter type a browser's WebGPU adapter is given from its self-description."""

from pyscript_app.gpu.browser_adapters import browser_adapter_type
from pyscript_app.gpu.matmul_rules import is_gpu_adapter


def _info(vendor="", architecture="", device="", description="", fallback=False):
    return {"vendor": vendor, "architecture": architecture, "device": device, "description": description,
            "fallback": fallback}


def test_software_and_fallback_adapters_are_cpus():
    # headless Chromium's adapter in the tests (vendor "google", architecture "swiftshader")
    assert browser_adapter_type(_info("google", "swiftshader")) == "CPU"
    assert browser_adapter_type(_info("", "", "", "SwiftShader Device (Subzero)")) == "CPU"
    assert browser_adapter_type(_info("mesa", "", "", "llvmpipe (LLVM 19.1.7, 256 bits)")) == "CPU"
    assert browser_adapter_type(_info("microsoft", "", "", "Microsoft Basic Render Driver")) == "CPU"
    assert browser_adapter_type(_info("nvidia", "ampere", fallback=True)) == "CPU"


def test_gpu_vendors_are_gpus_and_the_rules_treat_them_as_such():
    cases = {("nvidia", "ampere"): "DiscreteGPU", ("amd", "rdna-3"): "DiscreteGPU", ("NVIDIA", "hopper"): "DiscreteGPU",
             ("intel", "gen-12lp"): "IntegratedGPU", ("apple", "metal-3"): "IntegratedGPU",
             ("qualcomm", "adreno-7xx"): "IntegratedGPU", ("arm", "valhall"): "IntegratedGPU"}
    for (vendor, arch), kind in cases.items():
        info = _info(vendor, arch)
        assert browser_adapter_type(info) == kind, (vendor, arch)
        assert is_gpu_adapter({**info, "adapter_type": browser_adapter_type(info)})


def test_an_adapter_that_says_nothing_keeps_the_cpu_choices():
    for info in (_info(), _info("some-new-vendor", "x"), {}):
        kind = browser_adapter_type(info)
        assert kind == "Unknown" and not is_gpu_adapter({"adapter_type": kind})
