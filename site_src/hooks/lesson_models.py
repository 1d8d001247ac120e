"""mkdocs hook: the small trained model the attention and sampling lessons run in the page.

After the assets hook has (re)written site/py/, this writes site/py/models/names-nano.tgpt: `nano`
trained on names by the numpy reference (pyscript_app/train/numpy_backend.py and the Trainer, the recipe
in pyscript_app/lessons/lesson_checkpoint.py), a standard checkpoint (`tabgpt sample --checkpoint`
reads it too). Training takes some seconds, so the file is cached in the user cache dir under a key
of the run's config, the tokenizer's sha256 and the recipe version: later builds only link it.
The checkpoint's meta records the final train and validation losses, which the pages show.
Must come AFTER assets.py (that hook clears site/py/) and can come before or after datasets.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError


def on_post_build(config: MkDocsConfig) -> None:
    repo_root = Path(config.config_file_path).resolve().parent
    if str(repo_root) not in sys.path:  # `mkdocs` run from a venv without the editable install
        sys.path.insert(0, str(repo_root))
    from pyscript_app.lessons.lesson_checkpoint import MODEL_PATH

    write_lesson_model(Path(config.site_dir) / MODEL_PATH)


def cache_dir() -> Path:
    from pyscript_app.data.datasets import default_cache_dir

    return default_cache_dir().parent / "lesson-models"


def write_lesson_model(target: Path, data_dir: Path | None = None, cache: Path | None = None, cfg=None) -> Path:
    """Train (or find in the cache) the lesson model and put it at `target`. Returns the cached file.
    cfg: the TrainConfig to run (default: the lessons' recipe; tests pass a shorter one)."""
    from pyscript_app.config import VOCAB_SIZE
    from pyscript_app.data.datasets import DatasetError, default_cache_dir
    from pyscript_app.lessons.lesson_checkpoint import lesson_train_config, recipe_key
    from pyscript_app.data.prepare import load_prepared
    from pyscript_app.data.tokenfile import TokenFileError

    cfg = cfg or lesson_train_config()
    try:
        tok, train, val = load_prepared(cfg.dataset, data_dir or default_cache_dir(), VOCAB_SIZE)
    except (DatasetError, TokenFileError) as e:
        raise PluginError(f"lesson model data set {cfg.dataset!r}: {e}") from None
    cache = Path(cache) if cache is not None else cache_dir()
    cached = cache / f"{cfg.dataset}-{cfg.model}-{recipe_key(cfg, tok.sha256)}.tgpt"
    if not cached.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        blob = asyncio.run(train_checkpoint(cfg, tok, train, val))
        tmp = cached.with_name(cached.name + f".{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, cached)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(cached, target)
    except OSError:
        shutil.copy2(cached, target)
    return cached


async def train_checkpoint(cfg, tok, train, val) -> bytes:
    """Run the recipe with the numpy reference; the checkpoint's meta keeps the final losses."""
    from pyscript_app.train.numpy_backend import NumpyBackend
    from pyscript_app.train.run_state import checkpoint_bytes
    from pyscript_app.train.trainer import Trainer

    backend = NumpyBackend(cfg.model_cfg(), cfg)
    meta: dict = {"backend": backend.describe(), "trained_by": "site_src/hooks/lesson_models.py"}
    t0 = time.perf_counter()
    async for event in Trainer(cfg, backend, train, val, tok).run():
        if event["type"] == "eval":
            meta.update(train_loss=round(event["train_loss"], 4), val_loss=round(event["val_loss"], 4),
                        val_nats_per_byte=round(event["val_nats_per_byte"], 4))
    meta["seconds"] = round(time.perf_counter() - t0, 1)
    state = await backend.export()
    # the weights only (a third of the bytes): the pages sample from it, nobody resumes this run
    return checkpoint_bytes(cfg, tok, {"params": state["params"], "step": state["step"]}, meta)
