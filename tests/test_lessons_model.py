"""pyscript_app/lessons/model.py: the parameter calculator and the operation -> parity cases map."""

from __future__ import annotations

import pytest

from pyscript_app.config import PRESETS, ConfigError, ModelConfig, preset
from pyscript_app.gpu import registry
from pyscript_app.gpu.parity_cases import CASES
from pyscript_app.lessons.model import (OPERATIONS, cases_for, default_custom, formula_terms, kernels_of,
                                        model_from_form, operation, param_groups)


@pytest.mark.parametrize("name", list(PRESETS))
def test_groups_and_formula_add_up_to_the_layouts_count(name):
    cfg = preset(name)
    groups = param_groups(cfg)
    assert sum(g.count for g in groups) == cfg.param_count
    assert [t.name for g in groups for t in g.tensors] == [n for n, _ in cfg.param_shapes()]
    assert sum(v for _, v in formula_terms(cfg)) == cfg.param_count
    assert [g.title for g in groups][:3] == ["token embedding", "position embedding", "layer 0: attention"]
    assert groups[-1].title == "LM head" and len(groups) == 2 + 2 * cfg.n_layer + 2


def test_custom_shapes_are_checked():
    cfg = model_from_form("custom", {"n_layer": 3, "n_embd": 24, "n_head": 3, "block_size": 10, "vocab_size": 50})
    assert cfg == ModelConfig(3, 24, 3, 10, 50)
    assert sum(v for _, v in formula_terms(cfg)) == cfg.param_count
    assert model_from_form("custom", default_custom()) == preset("tiny")
    assert model_from_form("small") == preset("small")
    good = default_custom()
    with pytest.raises(ConfigError, match="not divisible"):
        model_from_form("custom", {**good, "n_head": 5})
    with pytest.raises(ConfigError, match="between 1 and 48"):
        model_from_form("custom", {**good, "n_layer": 0})
    with pytest.raises(ConfigError, match="whole number"):
        model_from_form("custom", {**good, "n_embd": None})
    with pytest.raises(ConfigError, match="unknown model preset"):
        model_from_form("huge")


def test_every_operation_has_parity_cases_of_its_own_shader():
    assert cases_for({"cases": []}, operation("rmsnorm")) == []
    fake = {"cases": [{"name": c.name, "kernels": list(c.kernels)} for c in CASES]}
    covered = set()
    for op in OPERATIONS:
        mine = cases_for(fake, op)
        assert mine, op.key
        assert all(registry.get(k).file == op.shader for m in mine for k in m["kernels"])
        covered |= {m["name"] for m in mine}
    assert len(covered) == sum(1 for c in CASES if registry.get(c.kernels[0]).file in {o.shader for o in OPERATIONS})
    assert set(kernels_of("rmsnorm.wgsl")) == {"rmsnorm_forward", "rmsnorm_backward"}
    with pytest.raises(KeyError):
        operation("nope")
