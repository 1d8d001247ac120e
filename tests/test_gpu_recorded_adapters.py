"""Real adapters' self-descriptions (tests/data/adapters/*.json, each with its source) through the
browser's and the native executor's paths: the same GPU gets the same kernel choices on both, a GPU
gets the GPU choices, a software adapter keeps the CPU ones; workgroup memory gates the kernels that
need it and shader-f16 the f16 weights. No GPU needed: the executors build the rules' inputs with the
pure functions called here (gpu/browser_adapters.browser_adapter_info, gpu/native.native_adapter_info,
gpu/adapter_inputs.choice_inputs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyscript_app.gpu import attention_ops, matmul_rules, registry
from pyscript_app.gpu.adapter_inputs import choice_inputs
from pyscript_app.gpu.browser_adapters import browser_adapter_info
from pyscript_app.gpu.gpt2_weights import choose_weight_dtype
from pyscript_app.gpu.native import native_adapter_info

RECORDS = {p.stem: json.loads(p.read_text(encoding="utf-8"))
           for p in sorted((Path(__file__).parent / "data" / "adapters").glob("*.json"))}
WEBGPU_DEFAULT_WORKGROUP_BYTES = 16384  # what a device gets when the host does not ask for more
LARGE = (64, 256)  # the large preset's head width and context (D, T): the blocks kernels' case


def inputs(record: dict, workgroup_bytes: int | None = None, features: list[str] | None = None):
    """(adapter_info, ChoiceInputs) as the record's host builds them from what its engine reports."""
    if record["host"] == "browser":
        info = browser_adapter_info(record["info"], record.get("fallback", False))
    else:
        info = native_adapter_info(record["info"], record["engine"], "recorded")
    limit = record.get("limits", {}).get("maxComputeWorkgroupStorageSize", WEBGPU_DEFAULT_WORKGROUP_BYTES)
    return info, choice_inputs(info, limit if workgroup_bytes is None else workgroup_bytes,
                               record.get("features", []) if features is None else features)


def choices(record: dict, **given) -> dict:
    """Every adapter-dependent choice of the training step and GPT-2 decoding, for the record."""
    info, ins = inputs(record, **given)
    wg = ins.max_workgroup_bytes
    return {
        "gpu": matmul_rules.is_gpu_adapter(info),
        "attention forward": attention_ops.forward_choice(*LARGE, info, wg),
        "attention backward": attention_ops.backward_choice(*LARGE, info, wg),
        "qkv forward": matmul_rules.matmul_forward_overrides("matmul_forward", 2048, 512, 1536, info, wg),
        "small forward": matmul_rules.matmul_forward_overrides("matmul_forward", 512, 128, 128, info, wg),
        "backward tiles": matmul_rules.matmul_backward_small_outputs({"TM": 64, "TN": 64}, info, wg),
        "dw split": matmul_rules.matmul_dw_split(2048, 512, 2048, info),
        "matvec rows": matmul_rules.matvec_rows_overrides(info),
        "vec4 entry": registry.matmul_entry("matmul_forward", 2048, 512, 1536, info),
        "weights": choose_weight_dtype("auto", ins.features),
        "override table": ins.override_table,
        "kernel table": ins.kernel_table,
    }


def test_every_record_says_where_it_comes_from_and_what_it_describes():
    assert len(RECORDS) >= 8
    for name, r in RECORDS.items():
        assert r["source"] and r["gpu"] and r["engine"], name
        assert r["host"] in ("browser", "native") and r["hardware"] in ("gpu", "cpu"), name
        assert isinstance(r["info"], dict) and r["info"], name
    vendors = " ".join(r["gpu"] for r in RECORDS.values()).lower()
    for maker in ("nvidia", "intel", "apple"):
        assert maker in vendors
    assert {r["host"] for r in RECORDS.values() if r["hardware"] == "cpu"} == {"browser", "native"}


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_each_host_sees_a_gpu_where_there_is_one(name):
    r = RECORDS[name]
    info, _ = inputs(r)
    assert matmul_rules.is_gpu_adapter(info) == (r["hardware"] == "gpu"), info


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_the_browser_and_the_native_path_give_one_gpu_the_same_kernels(name):
    """Each record's self-description, read by its own host's path, gives the choices of every other
    record of the same hardware class, whatever its host, at the same workgroup memory and features."""
    r = RECORDS[name]
    same = [o for o in RECORDS.values() if o["hardware"] == r["hardware"] and o["info"].get("architecture") ==
            r["info"].get("architecture") and o is not r]
    for wg in (WEBGPU_DEFAULT_WORKGROUP_BYTES, 32768, 49152):
        for features in ([], ["shader-f16"]):
            mine = choices(r, workgroup_bytes=wg, features=features)
            for other in same:
                assert choices(other, workgroup_bytes=wg, features=features) == mine, (name, other["gpu"], wg)


def test_the_same_h100_gives_the_same_choices_from_the_page_and_from_both_native_engines():
    h100 = [r for r in RECORDS.values() if r["gpu"] == "NVIDIA H100 80GB HBM3"]
    assert {r["host"] for r in h100} == {"browser", "native"} and len(h100) == 3
    for wg in (WEBGPU_DEFAULT_WORKGROUP_BYTES, 49152):
        seen = [choices(r, workgroup_bytes=wg, features=[]) for r in h100]
        assert all(c == seen[0] for c in seen) and seen[0]["gpu"]


@pytest.mark.parametrize("name", sorted(n for n, r in RECORDS.items() if "limits" in r))
def test_workgroup_memory_decides_the_blocks_kernels(name):
    r = RECORDS[name]
    limit = r["limits"]["maxComputeWorkgroupStorageSize"]
    c = choices(r)
    gpu = r["hardware"] == "gpu"
    forward = gpu and limit >= attention_ops.BLOCKS_FORWARD_WORKGROUP_BYTES
    backward = gpu and limit >= attention_ops.BLOCKS_BACKWARD_WORKGROUP_BYTES
    assert (c["attention forward"][0] == "attention_blocks_forward") == forward
    assert (c["attention backward"][0] == "attention_blocks_backward") == backward


def test_recorded_limits_split_the_blocks_kernels_where_the_memory_lies():
    # 32 KiB (Intel HD 530 in Firefox) holds the forward blocks (25 KiB), not the backward (40.5 KiB);
    # 48 KiB (NVIDIA, Chrome and Dawn) holds both.
    intel = choices(RECORDS["intel-hd-530-firefox"])
    assert intel["attention forward"][0] == "attention_blocks_forward"
    assert intel["attention backward"][0] == "attention_rows_backward"
    for name in ("nvidia-kepler-chrome-116", "nvidia-h100-dawn-native"):
        c = choices(RECORDS[name])
        assert (c["attention forward"][0], c["attention backward"][0]) == \
            ("attention_blocks_forward", "attention_blocks_backward"), name


@pytest.mark.parametrize("name", sorted(n for n, r in RECORDS.items() if "features" in r))
def test_f16_weights_where_the_adapter_has_shader_f16(name):
    r = RECORDS[name]
    assert choices(r)["weights"] == ("f16" if "shader-f16" in r["features"] else "f32")


def test_recorded_features_decide_f16_per_engine_not_per_gpu():
    # one H100: Dawn offers no shader-f16 there, wgpu-native does
    assert choices(RECORDS["nvidia-h100-dawn-native"])["weights"] == "f32"
    assert choices(RECORDS["nvidia-h100-wgpu-native"])["weights"] == "f16"
    assert choices(RECORDS["nvidia-rtx-4070-super-firefox"])["weights"] == "f16"
    assert choices(RECORDS["intel-hd-530-firefox"])["weights"] == "f32"


@pytest.mark.parametrize("name", sorted(n for n, r in RECORDS.items() if r["hardware"] == "cpu"))
def test_a_software_adapter_keeps_the_cpu_choices_even_with_room_for_more(name):
    c = choices(RECORDS[name], workgroup_bytes=65536, features=["shader-f16"])
    assert not c["gpu"]
    assert c["attention forward"][0] == "attention_rows_forward"
    assert c["attention backward"][0] == "attention_rows_backward"
    assert c["dw split"] == 1
    assert c["matvec rows"] == matmul_rules.MATVEC_CPU_OVERRIDES
    assert "RPI" not in c["small forward"] and "RPI" not in c["backward tiles"]


def test_swiftshader_gets_its_table_by_architecture_on_either_host():
    browser = RECORDS["swiftshader-headless-chromium"]
    native = {**browser, "host": "native", "info": {**browser["info"], "adapter_type": "CPU"}}
    for r in (browser, native):
        c = choices(r)
        assert c["override table"] == registry.ADAPTER_OVERRIDES["swiftshader"]
        assert c["kernel table"] == registry.ADAPTER_KERNELS["swiftshader"]
    for name, r in RECORDS.items():
        if r["info"].get("architecture") != "swiftshader":
            assert choices(r)["override table"] == {} and choices(r)["kernel table"] == {}, name


def test_firefox_adapters_are_typed_by_wgpus_own_device_type():
    """Firefox's GPUAdapterInfo strings are empty; without its wgpuDeviceType a GPU there would get the
    CPU adapters' choices, unlike the same adapter under wgpu-native."""
    for name in ("nvidia-rtx-4070-super-firefox", "intel-hd-530-firefox"):
        info, _ = inputs(RECORDS[name])
        assert info["vendor"] == "" and info["adapter_type_from"] == "wgpuDeviceType"
        assert info["adapter_type"] == {"DiscreteGpu": "DiscreteGPU", "IntegratedGpu": "IntegratedGPU"}[
            RECORDS[name]["info"]["wgpuDeviceType"]]
        bare = {k: v for k, v in RECORDS[name]["info"].items() if not k.startswith("wgpu")}
        assert not matmul_rules.is_gpu_adapter(browser_adapter_info(bare, False))


def test_the_rules_inputs_keep_only_the_features_the_hosts_request():
    _, ins = inputs(RECORDS["nvidia-h100-wgpu-native"])
    assert ins.features == frozenset({"shader-f16"})
    _, ins = inputs(RECORDS["nvidia-h100-dawn-native"])
    assert ins.features == frozenset() and ins.max_workgroup_bytes == 49152
