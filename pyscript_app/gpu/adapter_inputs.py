"""What the kernel choice rules read about a device, built by one function on every host.

The rules read four things: the adapter's self-description (matmul_rules.is_gpu_adapter keys on its
"adapter_type", registry.adapter_overrides / adapter_kernels on its "architecture"), the device's
workgroup memory (the 128 x 128 tiles, RPI 4, sliced K and the attention blocks kernels need more
than some adapters grant) and its features (gpt2_weights.choose_weight_dtype: f16 weights where
"shader-f16"). The browser executor (browser/webgpu_executor.py) and the native one (gpu/native.py)
both pass what their engine reports through choice_inputs, so an adapter gets the same kernels from
the page as from the command line.

    inputs = choice_inputs(ex.adapter_info, limit_bytes, adapter_features)
    ex.max_workgroup_bytes, ex.features, ex.override_table, ex.kernel_table = inputs

Pure Python (runs natively and in Pyodide).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from .registry import adapter_kernels, adapter_overrides

# The features the hosts request where the adapter has them (f16 weights: gpu/gpt2_weights.py).
WANTED_FEATURES = ("shader-f16",)


class ChoiceInputs(NamedTuple):
    max_workgroup_bytes: int  # the device's maxComputeWorkgroupStorageSize
    features: frozenset[str]  # the WANTED_FEATURES the device has
    override_table: dict  # registry.ADAPTER_OVERRIDES of the adapter's architecture ({} for most)
    kernel_table: dict  # registry.ADAPTER_KERNELS of the adapter's architecture ({} for most)


def device_features(available: Iterable[str]) -> frozenset[str]:
    """The WANTED_FEATURES among `available` (the adapter's or device's feature names)."""
    have = {str(f) for f in available}
    return frozenset(f for f in WANTED_FEATURES if f in have)


def choice_inputs(adapter_info: Mapping[str, object], workgroup_bytes: int,
                  available_features: Iterable[str]) -> ChoiceInputs:
    """The inputs an executor hands the choice rules, from its adapter_info, its device's workgroup
    memory limit and the feature names its engine reports."""
    return ChoiceInputs(int(workgroup_bytes), device_features(available_features),
                        adapter_overrides(adapter_info), adapter_kernels(adapter_info))
