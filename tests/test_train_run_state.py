"""pyscript_app/train/run_state.py: the checkpoint header both hosts write, and reading one back safely."""

from __future__ import annotations

import json
from array import array

import pytest

from pyscript_app.train import checkpoint
from pyscript_app.data.bpe import Tokenizer
from pyscript_app.train.checkpoint import CheckpointError
from pyscript_app.config import ConfigError, preset
from pyscript_app.train.run_state import checkpoint_bytes, make_train_config, read_checkpoint, warmup_steps_for


def _world():
    cfg = make_train_config(dataset="names", model="nano", steps=30, batch=2, seed=4)
    tok = Tokenizer.train(["anna", "bob", "carla"] * 10, 1024)
    n = cfg.model_cfg().param_count
    state = {"params": array("f", [0.5] * n).tobytes(), "adam_m": array("f", [0.0] * n).tobytes(),
             "adam_v": array("f", [1.0] * n).tobytes(), "step": 12}
    return cfg, tok, state


def test_make_train_config_applies_the_cli_rules():
    cfg = make_train_config(dataset="names", model="nano", steps=30, batch=2, eval_every=100)
    assert cfg.eval_every == 30 and cfg.warmup_steps == warmup_steps_for(30) == 3
    assert warmup_steps_for(10_000) == 50
    with pytest.raises(ConfigError, match="context limit"):
        make_train_config(dataset="names", model="nano", steps=30, batch=2, block_size=17)
    with pytest.raises(ConfigError, match="steps"):
        make_train_config(dataset="names", model="nano", steps=0, batch=2)


def test_a_checkpoint_round_trips_with_its_tokenizer_and_config():
    cfg, tok, state = _world()
    run = read_checkpoint(checkpoint_bytes(cfg, tok, state, {"backend": "test"}))
    assert run.step == 12 and run.resumable and run.model_cfg == preset("nano")
    assert run.tokenizer.sha256 == tok.sha256 and run.header["meta"] == {"backend": "test"}
    assert (run.train_cfg.steps, run.train_cfg.batch, run.train_cfg.seed) == (30, 2, 4)
    assert bytes(run.arrays["adam_v"]) == state["adam_v"]
    run.check_model(preset("nano"))
    with pytest.raises(CheckpointError, match="holds a nano model .* not a tiny model"):
        run.check_model(preset("tiny"), "tiny")


def _tampered(mutate) -> bytes:
    cfg, tok, state = _world()
    header, arrays = checkpoint.decode(checkpoint_bytes(cfg, tok, state))
    header = json.loads(json.dumps(header))
    arrays = {k: bytes(v) for k, v in arrays.items()}
    mutate(header, arrays)
    return checkpoint.encode(header, arrays)


@pytest.mark.parametrize("mutate, words", [
    (lambda h, a: h.pop("tokenizer"), "lacks 'tokenizer'"),
    (lambda h, a: h["tokenizer"].update(vocab_size=300), "invalid|tokenizer"),
    (lambda h, a: h["model_config"].update(n_embd=17), "invalid"),
    (lambda h, a: h.update(step=-1), "step"),
    (lambda h, a: a.pop("params"), "no params"),
    (lambda h, a: a.update(params=a["params"][:-4]), "parameters"),
])
def test_a_damaged_checkpoint_is_refused_with_a_reason(mutate, words):
    with pytest.raises(CheckpointError, match=words):
        read_checkpoint(_tampered(mutate))


def test_bytes_that_are_not_a_checkpoint_are_refused():
    with pytest.raises(CheckpointError, match="magic"):
        read_checkpoint(b"PK\x03\x04 a zip file")
