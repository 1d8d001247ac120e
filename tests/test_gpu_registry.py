"""The kernel registry against the .wgsl text on disk, uniform packing and grid formulas (no GPU).

For every registered kernel the entry point's statically used resource variables (followed through
the helper functions it calls) must be exactly the registry's bindings, with the same access modes;
its uniform struct must have the registry's fields; the file's override constants must be the
registry's, with the same defaults."""

import re
import struct

import pytest

from pyscript_app.gpu import matmul_rules, registry, uniforms
from pyscript_app.gpu.registry import KERNELS, grid_1d

VAR_RE = re.compile(r"@group\(0\)\s*@binding\((\d+)\)\s*var<(storage,\s*(read_write|read)|uniform)>\s*(\w+)\s*:\s*([\w<>]+)")
STRUCT_RE = re.compile(r"struct\s+(\w+)\s*\{([^}]*)\}")
OVERRIDE_RE = re.compile(r"override\s+(\w+)\s*:\s*\w+\s*=\s*([\d.]+)u?\s*;")
FN_RE = re.compile(r"\bfn\s+(\w+)\s*\(")


def _functions(src: str) -> dict[str, str]:
    """function name -> its text (signature and body, braces matched)."""
    out = {}
    for m in FN_RE.finditer(src):
        i = src.index("{", m.end())
        depth, j = 0, i
        while True:
            depth += {"{": 1, "}": -1}.get(src[j], 0)
            if depth == 0:
                break
            j += 1
        out[m.group(1)] = src[m.start() : j + 1]
    return out


def _used_identifiers(fns: dict[str, str], entry: str) -> set[str]:
    seen, todo, idents = set(), [entry], set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        words = set(re.findall(r"(?<![.\w])\w+", fns[f]))  # not member accesses like v.x
        idents |= words
        todo += [w for w in words if w in fns and w != f]
    return idents


def _strip_comments(src: str) -> str:
    return re.sub(r"//[^\n]*", "", src)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_registry_matches_shader_text(name):
    k = KERNELS[name]
    src = _strip_comments(registry.shader_source(k.file))
    fns = _functions(src)
    assert k.entry in fns, f"{k.file} has no entry point {k.entry}"
    assert re.search(r"@compute\s*@workgroup_size\([^)]*\)\s*fn\s+" + k.entry + r"\b", src)
    used = _used_identifiers(fns, k.entry)
    bound = {}
    for m in VAR_RE.finditer(src):
        binding, kind, mode, var, typ = int(m.group(1)), m.group(2), m.group(3), m.group(4), m.group(5)
        if var in used:
            assert binding not in bound, f"{name}: two variables at binding {binding}"
            bound[binding] = ("uniform" if kind == "uniform" else mode, typ)
    assert sorted(bound) == list(range(len(k.bindings))), f"{name}: used bindings {sorted(bound)}"
    for i, (bname, access) in enumerate(k.bindings):
        assert bound[i][0] == access, f"{name}: binding {i} ({bname}) is {bound[i][0]} in the shader"
    assert k.bindings[-1][1] == "uniform" and all(a != "uniform" for _, a in k.bindings[:-1])
    structs = {s: body for s, body in STRUCT_RE.findall(src)}
    fields = tuple(re.findall(r"(\w+)\s*:\s*([\w<>]+)", structs[bound[len(k.bindings) - 1][1]]))
    assert fields == k.uniform, f"{name}: shader struct fields {fields}"
    overrides = {o: float(v) for o, v in OVERRIDE_RE.findall(src)}
    assert overrides == {o: float(v) for o, v in k.overrides}, f"{name}: shader overrides {overrides}"


def test_every_shader_file_is_registered_or_included():
    files = {p.name for p in registry.shader_dir().glob("*.wgsl")}
    included = registry.included_files()
    assert included == {"matmul_tiles.wgsl", "matmul_stores.wgsl", "matvec_body.wgsl", "strided_params.wgsl"}
    assert files - included == {k.file for k in KERNELS.values()}
    assert not included & {k.file for k in KERNELS.values()}  # shared code registers no kernel


def test_include_lines_are_replaced_by_the_files_text(tmp_path):
    (tmp_path / "common.wgsl").write_text("const A: u32 = 1u;\n", encoding="utf-8")
    (tmp_path / "main.wgsl").write_text('// head\n// #include "common.wgsl"\nconst B: u32 = A;\n', encoding="utf-8")
    assert registry.shader_source("main.wgsl", tmp_path) == "// head\nconst A: u32 = 1u;\n\nconst B: u32 = A;\n"
    assert registry.included_files(tmp_path) == {"common.wgsl"}
    src = registry.shader_source("matmul.wgsl")
    assert not registry.INCLUDE_RE.search(src) and "fn multiply_tiles(" in src and "fn matmul_forward(" in src


def test_uniform_layout_follows_wgsl_alignment():
    fields = (("n", "u32"), ("x", "f32"), ("v", "vec4<f32>"), ("i", "i32"), ("w", "vec2<u32>"))
    items, size = uniforms.layout(fields)
    assert [off for _, _, off in items] == [0, 4, 16, 32, 40]
    assert size == 48
    data = uniforms.pack(fields, {"n": 3, "x": 0.5, "v": (1, 2, 3, 4), "i": -2, "w": (7, 8)})
    assert len(data) == 48
    assert struct.unpack_from("<If", data, 0) == (3, 0.5)
    assert struct.unpack_from("<4f", data, 16) == (1, 2, 3, 4)
    assert struct.unpack_from("<i", data, 32) == (-2,)
    assert struct.unpack_from("<2I", data, 40) == (7, 8)  # vec2 aligned to 8: 36..40 is padding


def test_uniform_pack_rejects_missing_or_unknown_fields():
    with pytest.raises(KeyError):
        uniforms.pack((("a", "u32"), ("b", "u32")), {"a": 1})
    with pytest.raises(KeyError):
        uniforms.pack((("a", "u32"),), {"a": 1, "c": 2})
    assert len(uniforms.pack((("a", "u32"),), {"a": True})) == 16  # padded to 16 bytes


def test_grids_cover_the_work():
    assert grid_1d(0, 256)[0] == 0
    assert grid_1d(1, 256) == (1, 1, 1)
    assert grid_1d(256 * 65535 + 1, 256) == (65535, 2, 1)
    k = KERNELS["matmul_backward_dw"]
    assert k.workgroups({"N": 1000, "K": 65, "M": 3, "accumulate": 0}) == (1, 2, 1)
    assert KERNELS["relu_forward"].workgroups({"n": 1000}, {"WG": 64}) == (16, 1, 1)
    with pytest.raises(KeyError):
        KERNELS["relu_forward"].resolve_overrides({"NOPE": 1})


def test_matmul_entry_takes_the_vec4_twin_only_where_k_and_m_are_multiples_of_4():
    assert registry.matmul_entry("matmul_forward", 68, 20, 36) == "matmul_forward_v4"
    assert registry.matmul_entry("matmul_backward", 65, 16, 4) == "matmul_backward_v4"  # N is free
    assert registry.matmul_entry("matmul_forward_rmsnorm", 1, 4, 60) == "matmul_forward_rmsnorm_v4"
    for N, K, M in ((68, 18, 36), (68, 20, 34), (7, 5, 3), (64, 64, 65)):
        for kernel in registry.MATMUL_VEC4_TWINS:
            assert registry.matmul_entry(kernel, N, K, M) == kernel, (kernel, N, K, M)
    with pytest.raises(KeyError):
        registry.matmul_entry("matmul_forward_v4", 64, 64, 64)  # callers name the scalar entry


def test_matmul_entry_keeps_scalar_loads_on_switched_off_architectures(monkeypatch):
    monkeypatch.setattr(registry, "MATMUL_VEC4_OFF_ARCHITECTURES", {"some-gpu"})
    assert registry.matmul_entry("matmul_forward", 64, 64, 64, {"architecture": "Some-GPU"}) == "matmul_forward"
    assert registry.matmul_entry("matmul_forward", 64, 64, 64, {"architecture": "hopper"}) == "matmul_forward_v4"
    assert registry.matmul_entry("matmul_forward", 64, 64, 64, {}) == "matmul_forward_v4"


def test_vec4_twins_have_their_scalar_entrys_interface_and_grid():
    values = {"N": 130, "K": 40, "M": 260, "accumulate": 0, "eps": 1e-5, "part_stride": 10400}
    for kernel, twin in registry.MATMUL_VEC4_TWINS.items():
        a, b = KERNELS[kernel], KERNELS[twin]
        assert (a.file, b.file) == ("matmul.wgsl", "matmul_vec4.wgsl")
        assert (a.bindings, a.uniform, a.overrides) == (b.bindings, b.uniform, b.overrides)
        fields = {name: values[name] for name, _ in a.uniform}
        for tiles in ({"TM": 32, "TN": 32}, {"TM": 128, "TN": 64}):
            assert a.workgroups(fields, tiles) == b.workgroups(fields, tiles)


def test_vec4_twins_follow_their_scalar_entry_in_the_adapter_tables():
    assert registry.with_vec4_twins({"matmul_forward": 1, "relu_forward": 2}) \
        == {"matmul_forward": 1, "matmul_forward_v4": 1, "relu_forward": 2}
    assert registry.with_vec4_twins({"matmul_forward": 1, "matmul_forward_v4": 3})["matmul_forward_v4"] == 3
    for tables in (registry.ADAPTER_OVERRIDES, registry.ADAPTER_KERNELS):
        for table in tables.values():
            for kernel, twin in registry.MATMUL_VEC4_TWINS.items():
                if kernel in table:
                    assert table[twin] == table[kernel], (kernel, twin)


def test_split_rules_cut_both_sums_into_chunks_of_one_length_on_gpus_only():
    gpu, cpu = {"adapter_type": "DiscreteGPU"}, {"adapter_type": "CPU"}
    # large (N = 2048): chunks of 512 positions; qkv's dx sums 1536 -> 3 parts, fc's 2048 -> 4
    assert matmul_rules.matmul_dw_split(2048, 512, 1536, gpu) == 4
    assert matmul_rules.matmul_dx_split(2048, 512, 1536, gpu) == 3
    assert matmul_rules.matmul_dx_split(2048, 512, 2048, gpu) == 4
    assert matmul_rules.matmul_dx_split(2048, 2048, 512, gpu) == 1
    # medium (N = 1024): chunks of 256; short batches are not cut at all; at most MATMUL_SPLIT_MAX
    assert matmul_rules.matmul_dw_split(1024, 256, 768, gpu) == 4 and matmul_rules.matmul_dx_split(1024, 256, 768, gpu) == 3
    assert matmul_rules.matmul_dw_split(256, 64, 64, gpu) == 1
    assert matmul_rules.matmul_dx_split(1024, 256, 1 << 16, gpu) == matmul_rules.MATMUL_SPLIT_MAX
    for rule in (matmul_rules.matmul_dw_split, matmul_rules.matmul_dx_split):
        assert rule(2048, 512, 2048, cpu) == rule(2048, 512, 2048, None) == 1
    # the backward's big tiles count the parts' workgroups
    assert matmul_rules.matmul_backward_tiles(2048, 2048, 512) == {"TM": 64, "TN": 64}
    assert matmul_rules.matmul_backward_tiles(2048, 2048, 512, split=4) == {"TM": 128, "TN": 128}


def test_sliced_k_only_for_32_tiles_at_rpi_4_on_gpus_with_the_workgroup_memory():
    from pyscript_app.gpu.matmul_rules import matmul_forward_kgroups, matmul_forward_overrides, matmul_workgroup_bytes
    gpu, cpu = {"adapter_type": "DiscreteGPU"}, {"adapter_type": "CPU"}
    r32, r64 = {"TM": 32, "TN": 32, "RPI": 4}, {"TM": 64, "TN": 64, "RPI": 4}
    assert matmul_forward_kgroups(1024, 256, r32, gpu, 49152) == {**r32, "KGROUPS": 4}
    assert matmul_forward_kgroups(2048, 512, r64, gpu, 49152) == r64
    assert matmul_forward_kgroups(1024, 256, {"TM": 64, "TN": 64}, gpu, 49152) == {"TM": 64, "TN": 64}
    assert matmul_forward_kgroups(1024, 256, r32, cpu, 49152) == r32
    assert matmul_forward_kgroups(1024, 256, r32, None, 49152) == r32  # the browser reports no adapter type
    assert matmul_forward_kgroups(1024, 256, r32, gpu, 16384) == r32  # WebGPU's default limit: too small
    # the sizes Tint reports for these pipelines (rstd_sh included: the rmsnorm entries' total)
    assert matmul_workgroup_bytes(64, 64, 2) == 17664 and matmul_workgroup_bytes(128, 128) == 17408
    assert matmul_workgroup_bytes(32, 32, 4, 4) == 18560
    # through the whole rule: medium proj (64 tiles of 64 x 64) and its rmsnorm products (no sliced K)
    assert matmul_forward_overrides("matmul_forward_residual", 1024, 256, 256, gpu, 49152) == {**r32, "KGROUPS": 4}
    assert matmul_forward_overrides("matmul_forward_rmsnorm", 1024, 256, 768, gpu, 49152) == r32


def test_forward_products_take_64_by_128_tiles_on_gpus_outside_the_measured_band():
    from pyscript_app.gpu.matmul_rules import matmul_forward_overrides
    gpu = {"adapter_type": "DiscreteGPU"}
    wide, big, small = {"TM": 64, "TN": 128}, {"TM": 128, "TN": 128}, {"TM": 64, "TN": 64}
    assert matmul_forward_overrides("matmul_forward", 2048, 512, 1536, gpu, 49152) == wide  # 192 big tiles
    assert matmul_forward_overrides("matmul_forward_rmsnorm", 2048, 512, 1536, gpu, 49152) == wide
    assert matmul_forward_overrides("matmul_forward", 2048, 512, 2048, gpu, 49152) == big  # 256
    assert matmul_forward_overrides("matmul_forward", 4096, 4096, 4096, gpu, 49152) == wide  # 1024
    # 64 big tiles, fewer than 160: 64 x 64, with 4 x 4 outputs per invocation (matmul_small_outputs)
    assert matmul_forward_overrides("matmul_forward", 2048, 2048, 512, gpu, 49152) == {**small, "RPI": 4}
    assert matmul_forward_overrides("matmul_forward", 4096, 4096, 4096, {"adapter_type": "CPU"}, 49152) == big


def test_few_outputs_take_4_by_4_per_invocation_on_gpus_with_the_workgroup_memory():
    from pyscript_app.gpu.matmul_rules import matmul_forward_overrides, matmul_small_outputs, matmul_workgroup_bytes
    gpu, cpu = {"adapter_type": "DiscreteGPU"}, {"adapter_type": "CPU"}
    t64 = {"TM": 64, "TN": 64}
    r64, r32 = {**t64, "RPI": 4}, {"TM": 32, "TN": 32, "RPI": 4}
    assert matmul_small_outputs(2048, 512, t64, gpu, 49152) == r64  # large proj, fc_proj: 256 tiles
    assert matmul_small_outputs(1024, 1024, t64, gpu, 49152) == r64  # medium fc: 256
    assert matmul_small_outputs(2048, 1024, t64, gpu, 49152) == t64  # large lm_head: 512 tiles, RPI 8
    assert matmul_small_outputs(1024, 768, t64, gpu, 49152) == r32  # medium qkv: 192
    assert matmul_small_outputs(1024, 256, t64, gpu, 49152) == r32  # medium proj, fc_proj: 64
    assert matmul_small_outputs(2048, 512, t64, cpu, 49152) == t64
    assert matmul_small_outputs(2048, 512, t64, None, 49152) == t64  # the browser reports no adapter type
    assert matmul_small_outputs(2048, 512, t64, gpu, 16384) == t64  # 16-deep slices of 64 x 64: 17.7 KiB
    assert matmul_small_outputs(1024, 256, t64, gpu, 16384) == r32  # 32 x 32: 8-deep, 4.5 KiB
    assert matmul_small_outputs(64, 64, {"TM": 128, "TN": 128}, gpu, 49152) == {"TM": 128, "TN": 128}
    assert matmul_small_outputs(64, 64, {"TM": 64, "TN": 128}, gpu, 49152) == {"TM": 64, "TN": 128}
    # the sizes Tint reports (rstd_sh included)
    assert matmul_workgroup_bytes(64, 64, 1, 4) == 17664 and matmul_workgroup_bytes(32, 32, 1, 4) == 4736
    assert matmul_forward_overrides("matmul_forward", 2048, 2048, 512, gpu, 49152) == r64  # large fc_proj


def test_backward_64_tiles_take_4_by_4_per_invocation_on_gpus():
    from pyscript_app.gpu.matmul_rules import matmul_backward_small_outputs
    gpu, cpu = {"adapter_type": "DiscreteGPU"}, {"adapter_type": "CPU"}
    t64, t128 = {"TM": 64, "TN": 64}, {"TM": 128, "TN": 128}
    assert matmul_backward_small_outputs(t64, gpu, 49152) == {**t64, "RPI": 4}
    assert matmul_backward_small_outputs(t128, gpu, 49152) == t128
    assert matmul_backward_small_outputs(t64, cpu, 49152) == t64
    assert matmul_backward_small_outputs(t64, None, 49152) == t64
    assert matmul_backward_small_outputs(t64, gpu, 16384) == t64


def test_tiles_that_need_more_workgroup_memory_than_the_device_has_fall_back_to_64():
    from pyscript_app.gpu.matmul_rules import (matmul_backward_small_outputs, matmul_fit, matmul_forward_overrides,
                                               matmul_workgroup_bytes)
    t64, t128 = {"TM": 64, "TN": 64}, {"TM": 128, "TN": 128}
    assert matmul_workgroup_bytes(128, 128) == 17408 > 16384 >= matmul_workgroup_bytes(64, 64)
    assert matmul_fit(t128, 16384) == t64 and matmul_fit(t128, 17408) == t128
    assert matmul_fit({"TM": 64, "TN": 128}, 16384) == {"TM": 64, "TN": 128}  # 13,056 bytes
    # WebGPU's default 16 KiB (a browser adapter that grants no more): 4096^3 would take 128 x 128
    for info in ({"adapter_type": "CPU"}, None):
        assert matmul_forward_overrides("matmul_forward", 4096, 4096, 4096, info, 16384) == t64
        assert matmul_forward_overrides("matmul_forward", 4096, 4096, 4096, info, 32768) == t128
    assert matmul_backward_small_outputs(t128, {"adapter_type": "CPU"}, 16384) == t64
    assert matmul_backward_small_outputs(t128, {"adapter_type": "CPU"}, 32768) == t128
