"""gpu/coop_rules.py: which adapters run matmul_coop.wgsl, which shapes it takes, which block a product
gets; and gpu/model_ops.py refusing mixed precision where it cannot run (no GPU needed)."""

import pytest

from pyscript_app.config import ModelConfig
from pyscript_app.gpu import coop_rules
from pyscript_app.gpu.layout import PaddedLayout
from pyscript_app.gpu.executor import as_view
from pyscript_app.gpu.model_ops import ModelOps
from pyscript_app.playground.pipeline_plan import PlanningExecutor

F16 = {"component_type": "f16", "result_component_type": "f32", "m": 16, "n": 16, "k": 16,
       "min_subgroup_size": 32, "max_subgroup_size": 32}


def test_only_the_f16_16x16x16_configuration_with_f32_results_at_subgroup_32_qualifies():
    assert coop_rules.coop_config_listed([{**F16, "component_type": "i8"}, F16])
    for other in ({"result_component_type": "f16"}, {"n": 8}, {"k": 8}, {"min_subgroup_size": 16},
                  {"component_type": "u8", "result_component_type": "u32"}):
        assert not coop_rules.coop_config_listed([{**F16, **other}])
    assert not coop_rules.coop_config_listed([]) and not coop_rules.coop_config_listed(None)


def test_shapes_need_the_contiguous_dimensions_and_m_in_fours():
    ok = coop_rules.coop_shape_ok
    assert ok(2048, 512, 1536, False, False) and ok(6, 8, 12, False, True) and ok(8, 6, 12, True, False)
    assert not ok(8, 6, 12, False, False)   # A's rows (K) not in fours
    assert not ok(6, 8, 12, True, False)    # A stored (K,N): N is contiguous
    assert not ok(8, 6, 12, False, True)    # B stored (M,K): K is contiguous
    assert not ok(8, 8, 10, False, False)   # the output's rows (vec4 stores)


def test_bigger_blocks_only_where_they_still_fill_the_gpu_or_the_inner_dimension_is_long():
    block, r = coop_rules.coop_block, coop_rules
    assert block(4096, 4096, 4096) == r.COOP_BIG        # 1024 blocks of 128 x 128
    assert block(2048, 512, 2048) == r.COOP_BIG         # large's fc: 256 of 128 x 128
    assert block(2048, 2048, 512) == r.COOP_SMALL       # large's fc_proj: 64 of 128 x 128, 256 of 64 x 64
    assert block(512, 2048, 512) == r.COOP_SMALL        # large's proj dw: 64 of 64 x 64, but K = 2048
    assert block(1024, 256, 768) == r.COOP_TINY         # medium's qkv: 192 of 64 x 64, K = 256
    assert block(128 * r.COOP_BIG_WORKGROUPS, 64, 128) == r.COOP_BIG
    assert block(128 * (r.COOP_BIG_WORKGROUPS - 1), 64, 128) == r.COOP_SMALL
    # 255 blocks of 64 x 64 (86 of 128 x 128): 32 x 32 unless the inner dimension is long
    assert block(64 * 85, r.COOP_LONG_K, 192) == r.COOP_TINY
    assert block(64 * 85, r.COOP_LONG_K + 4, 192) == r.COOP_SMALL
    assert block(64 * 86, 64, 192) == r.COOP_SMALL  # 258 of 64 x 64


def test_the_rules_blocks_are_ones_the_kernel_can_run():
    ok = coop_rules.coop_block_ok
    assert all(ok(b) for b in (coop_rules.COOP_BIG, coop_rules.COOP_SMALL, coop_rules.COOP_TINY))
    assert not ok({"WY": 1, "WX": 1, "RT": 4, "CT": 4, "BK": 32})  # 16 vec4 per invocation per slice
    assert not ok({"WY": 2, "WX": 2, "RT": 5, "CT": 1, "BK": 32})  # 4 x 4 accumulators at most
    assert ok({"WY": 2, "WX": 2, "RT": 1, "CT": 1, "BK": 16})      # 32 x 16 / 4 = 128 vec4: one each...
    assert not ok({"WY": 4, "WX": 4, "RT": 1, "CT": 1, "BK": 16})  # ...but half a one for 512 invocations


class _NoCoop:
    coop_ok = False
    adapter_info: dict = {}


def test_model_ops_refuses_mixed_precision_without_a_device_for_it_or_with_odd_shapes():
    cfg = ModelConfig(n_layer=1, n_embd=16, n_head=2, block_size=8, vocab_size=40)
    with pytest.raises(ValueError, match="opened for it"):
        ModelOps(_NoCoop(), PaddedLayout(cfg), 2, 8, attention=None, precision="mixed")
    ex = _NoCoop()
    ex.coop_ok = True
    odd = ModelConfig(n_layer=1, n_embd=16, n_head=2, block_size=8, vocab_size=42)
    with pytest.raises(ValueError, match="multiples of 4"):
        ModelOps(ex, PaddedLayout(odd), 2, 8, attention=None, precision="mixed")
    with pytest.raises(ValueError, match="unknown precision"):
        ModelOps(ex, PaddedLayout(cfg), 2, 8, attention=None, precision="bf16")


def test_dw_is_cut_into_k_runs_only_where_its_output_has_few_blocks_and_its_sum_is_long():
    split, r = coop_rules.coop_dw_split, coop_rules
    block = coop_rules.coop_block
    # large's dw products (x (2048,K) @ w (K,M)): the fewest runs that give 128 x 128 blocks 96 workgroups
    assert split(2048, 512, 1536) == 2 and block(512, 2048, 1536, 2) == r.COOP_BIG  # qkv: 48 -> 96
    assert split(2048, 512, 2048) == 2 and block(512, 2048, 2048, 2) == r.COOP_BIG  # fc: 64 -> 128
    assert split(2048, 2048, 512) == 2 and block(2048, 2048, 512, 2) == r.COOP_BIG  # fc_proj
    assert split(2048, 512, 1024) == 4 and block(512, 2048, 1024, 4) == r.COOP_BIG  # lm_head: 32 -> 128
    # proj: 16 of 128 x 128 even in 4 runs, so 64 x 64 blocks, 64 of them, in 4 runs
    assert split(2048, 512, 512) == 4 and block(512, 2048, 512, 4) == r.COOP_SMALL
    assert split(2 * r.COOP_DW_MIN_RUN - 4, 64, 64) == 1  # each run would be shorter than COOP_DW_MIN_RUN
    assert split(64 * r.COOP_DW_MIN_RUN, 64, 64) == r.COOP_DW_MAX_SPLIT
    assert split(1024, 256, 768) == 2 and block(256, 1024, 768, 2) == r.COOP_TINY  # medium's qkv
    # a split product counts its runs' workgroups when the block is chosen
    assert block(512, 2048, 512, 1) == r.COOP_SMALL
    # forward and dx: 128 x 128 from 96 workgroups (large's fc, lm_head forward; fc_proj dx), else 64 x 64
    assert block(2048, 512, 2048) == block(2048, 512, 1024) == block(2048, 512, 2048) == r.COOP_BIG
    assert block(2048, 512, 512) == block(2048, 1536, 512) == r.COOP_SMALL


class _Recorder(PlanningExecutor):
    """The planning executor (creates nothing) on a device opened for mixed precision, keeping every
    dispatch's buffers, values and overrides."""

    def __init__(self):
        super().__init__()
        self.coop_ok = True
        self.adapter_info = {"adapter_type": "DiscreteGPU"}
        self.max_workgroup_bytes = 49152
        self.log = []

    def dispatch(self, kernel, buffers, params, *, overrides=None, shape=None):
        self.log.append((kernel, [as_view(b) for b in buffers], dict(params), dict(overrides or {})))
        super().dispatch(kernel, buffers, params, overrides=overrides, shape=shape)


class _NoAttention:
    def forward(self, *a, **k):
        pass

    def backward(self, *a, **k):
        pass


def test_the_mixed_backward_binds_each_split_dw_its_parts_and_adds_them_once(monkeypatch):
    from pyscript_app.gpu import model_ops
    monkeypatch.setattr(model_ops, "coop_dw_split", lambda N, K, M: {3 * K: 2, K: 4}.get(M, 1))
    cfg = ModelConfig(n_layer=2, n_embd=16, n_head=2, block_size=8, vocab_size=40)
    ex, layout = _Recorder(), PaddedLayout(cfg)
    ops = ModelOps(ex, layout, 2, 8, attention=_NoAttention(), precision="mixed")
    assert ops.split["h0.qkv"] == 2 and ops.split["h1.proj"] == 4 and ops.split["h0.fc"] == 1
    params, grads = ex.alloc(layout.padded_nbytes, label="params"), ex.alloc(layout.padded_nbytes, label="grads")
    ex.log.clear()
    ops.backward(params, grads)
    coop = [(b, p, o) for k, b, p, o in ex.log if k == "matmul_coop" and p["batches"] == 1]  # not the attention's
    dws = [(b, p, o) for b, p, o in coop if o["A_T"] == 1]
    assert len(dws) == 1 + 4 * cfg.n_layer
    for b, p, o in dws:
        weight = next(n for n in ops.split if layout.byte_range(n)[0] == b[3].offset)
        assert o["KSPLIT"] == ops.split[weight] and b[3].buffer is grads
        if o["KSPLIT"] > 1:  # its parts: from the weight's own offset in the parts buffer
            assert b[4].buffer is ops.parts and p["part_stride"] == ops.parts_span
            assert b[4].offset == (layout.slots[weight].offset - ops.parts_lo) * 4
        else:
            assert b[4].buffer is ops.no_parts
    assert all(o["KSPLIT"] == 1 and b[4].buffer is ops.no_parts for b, p, o in coop if o["A_T"] == 0)
    assert [k for k, *_ in ex.log].count("add_parts") == 1 and ex.log[-1][0] == "add_parts"
    assert ex.log[-1][2] == {"n": ops.parts_span, "count": 3, "stride": ops.parts_span}
