"""site_src/hooks/lesson_models.py: the build trains the lessons' model once, caches it, ships a checkpoint."""

from __future__ import annotations

import importlib.util
import math
from types import ModuleType

import pytest

from _require import REPO_ROOT, module_available, require
from pyscript_app.lessons.lesson_checkpoint import open_lesson_model
from pyscript_app.train.run_state import make_train_config


@pytest.fixture(scope="module")
def hook() -> ModuleType:
    require(module_available("mkdocs"), "mkdocs is not installed (pip install -e '.[test]')")
    spec = importlib.util.spec_from_file_location("tabgpt_lesson_models_hook",
                                                  REPO_ROOT / "site_src/hooks/lesson_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trains_once_then_links_the_cached_checkpoint(hook, data_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("TABGPT_DATA_MIRROR", str(data_mirror))
    cfg = make_train_config(dataset="names", model="nano", steps=6, batch=4, eval_every=6, seed=5)
    target = tmp_path / "site" / "py" / "models" / "names-nano.tgpt"
    cached = hook.write_lesson_model(target, cache=tmp_path / "cache", cfg=cfg)
    lesson = open_lesson_model(target.read_bytes())
    assert lesson.step == 6 and lesson.cfg == cfg.model_cfg()
    assert 0 < lesson.meta["val_loss"] < math.log(lesson.cfg.vocab_size) + 1
    assert lesson.meta["trained_by"] == "site_src/hooks/lesson_models.py"

    async def must_not_train(*args):
        raise AssertionError("the cached checkpoint should have been used")

    monkeypatch.setattr(hook, "train_checkpoint", must_not_train)
    target.unlink()
    assert hook.write_lesson_model(target, cache=tmp_path / "cache", cfg=cfg) == cached
    assert target.read_bytes() == cached.read_bytes()
    other = make_train_config(dataset="names", model="nano", steps=7, batch=4, eval_every=7, seed=5)
    with pytest.raises(AssertionError, match="cached checkpoint"):  # another recipe: another key, trains
        hook.write_lesson_model(target, cache=tmp_path / "cache", cfg=other)
