"""pyscript_app/lessons/lesson_checkpoint.py: the build's recipe, its cache key, opening the checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from _world import tiny_train_config, tiny_world
from pyscript_app.train.checkpoint import CheckpointError
from pyscript_app.lessons.lesson_checkpoint import (RECIPE, lesson_train_config, open_lesson_model, recipe_key,
                                                    token_label)
from pyscript_app.reference import model
from pyscript_app.train.run_state import checkpoint_bytes


def tiny_checkpoint(seed: int = 0):
    tok, _, _ = tiny_world()
    cfg = tiny_train_config()
    params = np.random.default_rng(seed).normal(0, 0.3, cfg.model_cfg().param_count).astype(np.float32)
    return tok, cfg, params, checkpoint_bytes(cfg, tok, {"params": params.tobytes(), "step": 7}, {"val_loss": 2.5})


def test_recipe_is_nano_on_names_and_the_key_follows_config_and_data():
    cfg = lesson_train_config()
    assert (cfg.dataset, cfg.model, cfg.steps, cfg.batch) == (RECIPE["dataset"], RECIPE["model"], RECIPE["steps"],
                                                              RECIPE["batch"])
    key = recipe_key(cfg, "a" * 64)
    assert key == recipe_key(lesson_train_config(), "a" * 64)
    assert key != recipe_key(cfg, "b" * 64)
    assert key != recipe_key(tiny_train_config(), "a" * 64)


def test_open_lesson_model_runs_the_checkpoints_weights():
    tok, cfg, params, blob = tiny_checkpoint()
    lesson = open_lesson_model(blob)
    assert lesson.step == 7 and lesson.meta == {"val_loss": 2.5} and lesson.cfg == cfg.model_cfg()
    ids = lesson.context_ids("karimo la")
    assert ids == [tok.bos] + tok.encode("karimo") + [tok.bos] + tok.encode("la")
    expected = model.logits(cfg.model_cfg(), params.astype(np.float64), np.array([ids]))[0, -1]
    np.testing.assert_allclose(lesson.tiny.forward(ids).logits[0], expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(CheckpointError):
        open_lesson_model(blob[:-4])


def test_context_ids_are_the_training_stream_cut_to_the_context():
    tok, cfg, _, blob = tiny_checkpoint()
    lesson = open_lesson_model(blob)
    assert lesson.context_ids("") == [tok.bos]
    assert lesson.context_ids("ka  ri ") == [tok.bos] + tok.encode("ka") + [tok.bos] + tok.encode("ri") + [tok.bos]
    long = lesson.context_ids("karimo " * 10)
    assert len(long) == cfg.model_cfg().block_size and long[0] == tok.bos


def test_token_labels():
    tok = tiny_world()[0]
    assert token_label(tok, tok.bos) == "⟨BOS⟩" and token_label(tok, tok.eos) == "⟨EOS⟩"
    assert token_label(tok, tok.encode("ka")[0]) == tok.decode(tok.encode("ka")[:1])
