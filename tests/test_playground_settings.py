"""pyscript_app/playground/settings.py: the playground's form values, parsed and checked."""

from __future__ import annotations

import pytest

from pyscript_app.config import preset
from pyscript_app.playground.settings import DEFAULTS, InputError, parse_settings

FORM = {"dataset": "names", "model": "nano", "steps": "50", "batch": "4", "context": "", "lr": "0.01",
        "seed": "7", "checkpoint_every": "10", "prompt": "an", "temperature": "0.5", "top_k": "5"}


def test_a_valid_form_gives_the_run_train_config():
    s = parse_settings(FORM)
    assert (s.model, s.steps, s.batch, s.context, s.lr, s.seed, s.top_k) == ("nano", 50, 4, 0, 0.01, 7, 5)
    cfg = s.train_config()
    assert cfg.backend == "gpu" and cfg.seq_len == preset("nano").block_size
    assert (cfg.steps, cfg.batch, cfg.lr, cfg.seed, cfg.log_every) == (50, 4, 0.01, 7, 10)
    assert cfg.warmup_steps == 5 and cfg.eval_every == 10  # 10% warmup; at least every read-back


def test_missing_fields_take_the_page_defaults():
    s = parse_settings({})
    assert s.model == DEFAULTS["model"] and s.steps == int(DEFAULTS["steps"])


@pytest.mark.parametrize("field, value, words", [
    ("steps", "ten", "whole number"), ("steps", "0", "between 1"), ("batch", "2.5", "whole number"),
    ("lr", "fast", "number"), ("lr", "0", "above 0"), ("lr", "nan", "learning rate"),
    ("seed", "-1", "between 0"), ("top_k", "x", "top-k"), ("temperature", "-1", "temperature"),
    ("model", "gigantic", "unknown model"), ("dataset", "wiki", "unknown dataset"),
    ("context", "17", "over the nano model's limit of 16"), ("context", "abc", "whole number"),
])
def test_bad_values_raise_one_readable_line(field, value, words):
    with pytest.raises(InputError, match=words):
        parse_settings({**FORM, field: value})


def test_a_context_within_the_limit_sets_the_training_window():
    assert parse_settings({**FORM, "context": "8"}).train_config().seq_len == 8


def test_run_key_depends_on_the_trajectory_and_the_data_only():
    key = parse_settings(FORM).run_key("names:abc")
    assert len(key) == 16 and int(key, 16) >= 0
    same = {"prompt": "zz", "temperature": "1.5", "top_k": "0", "checkpoint_every": "25"}
    assert parse_settings({**FORM, **same}).run_key("names:abc") == key
    assert parse_settings(FORM).run_key("names:abd") != key
    for field, value in (("steps", "51"), ("seed", "8"), ("batch", "5"), ("lr", "0.02"), ("context", "8")):
        assert parse_settings({**FORM, field: value}).run_key("names:abc") != key, field
