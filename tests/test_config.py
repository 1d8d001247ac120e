import json

import pytest

from pyscript_app.config import PRESETS, ConfigError, ModelConfig, TrainConfig, preset


def test_presets_match_contract():
    # CONTRACTS §1: 1/2/4/6/8 layers; width 16/64/128/256/512; heads 4/4/4/8/8; context 16/32/64/128/256
    got = [(p.n_layer, p.n_embd, p.n_head, p.block_size, p.vocab_size) for p in map(preset, PRESETS)]
    assert got == [(1, 16, 4, 16, 1024), (2, 64, 4, 32, 1024), (4, 128, 4, 64, 1024),
                   (6, 256, 8, 128, 1024), (8, 512, 8, 256, 1024)]


@pytest.mark.parametrize("name", list(PRESETS))
def test_param_count_is_the_sum_of_the_layout(name):
    cfg = preset(name)
    L, C, V, T = cfg.n_layer, cfg.n_embd, cfg.vocab_size, cfg.block_size
    per_layer = C + 3 * C * C + C * C + C + 4 * C * C + 4 * C * C
    assert cfg.param_count == V * C + T * C + L * per_layer + C + C * V


def test_offsets_are_contiguous_and_ordered():
    cfg = preset("tiny")
    offs = cfg.param_offsets()
    end = 0
    for name, shape in cfg.param_shapes():
        off, shp = offs[name]
        assert off == end and shp == shape
        end += 1 if not shape else __import__("math").prod(shape)
    assert end == cfg.param_count


def test_unknown_preset_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        preset("huge")


def test_bad_model_shapes_rejected():
    with pytest.raises(ConfigError):
        ModelConfig(n_layer=1, n_embd=10, n_head=4, block_size=8)
    with pytest.raises(ConfigError):
        ModelConfig(n_layer=0, n_embd=8, n_head=2, block_size=8)


def test_blocksize_over_limit_rejected_and_within_limit_kept():
    with pytest.raises(ConfigError, match="exceeds"):
        TrainConfig(model="nano", block_size=17).validate()
    cfg = TrainConfig(model="nano", block_size=8).validate()
    assert cfg.seq_len == 8 and cfg.model_cfg().block_size == 16


def test_train_config_json_round_trip():
    cfg = TrainConfig(model="small", steps=7, lr=1e-3)
    d = json.loads(cfg.to_json())
    assert d["resolved_model"]["n_embd"] == 128
    assert TrainConfig.from_dict(d) == cfg


def test_dropout_defaults_off_round_trips_and_is_validated():
    assert TrainConfig().dropout == 0.0
    cfg = TrainConfig(model="nano", dropout=0.2).validate()
    assert TrainConfig.from_dict(json.loads(cfg.to_json())).dropout == 0.2
    assert TrainConfig.from_dict({"model": "nano"}).dropout == 0.0  # configs saved before the field
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ConfigError, match="dropout must be in"):
            TrainConfig(model="nano", dropout=bad).validate()


@pytest.mark.parametrize("field,bad,needle", [
    ("weight_decay", -0.1, "weight decay must be in"), ("weight_decay", 10.0, "weight decay must be in"),
    ("beta2", 1.5, "beta2 must be in"), ("beta1", -0.1, "beta1 must be in"),
    ("decay_start_frac", 1.2, "decay_start_frac must be in"), ("min_lr_frac", -1.0, "min_lr_frac must be in"),
])
def test_optimizer_settings_out_of_range_are_config_errors(field, bad, needle):
    from dataclasses import replace
    TrainConfig(dataset="names", model="nano").validate()  # the defaults pass
    with pytest.raises(ConfigError, match=needle):
        replace(TrainConfig(dataset="names", model="nano"), **{field: bad}).validate()
