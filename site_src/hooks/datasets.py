"""mkdocs hook: the registry data sets, tokenized, as files the playground's worker fetches.

After the assets hook has (re)written site/py/, this writes into site/py/data/:

    <name>.tokenizer.json, <name>.train.bin, <name>.val.bin     for names and shakespeare
    index.json   {"datasets": {name: {"tokenizer_sha256", "vocab_size", "train_tokens", "val_tokens",
                                      "files": {"tokenizer", "train", "val"}}}}

The files are the ones `tabgpt data` prepares (prepare.load_prepared: the dataset registry, the
user cache dir, $TABGPT_DATA_MIRROR for the raw text), so the browser trains on exactly the tokens
the CLI does. Prepared files are cached there: a rebuild only links them. When the raw text is
neither cached nor reachable, the build fails with the registry's message (set $TABGPT_DATA_MIRROR).
Must come AFTER assets.py in mkdocs.yml's `hooks:` (that hook clears site/py/ on every build).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError

DATA_DIR = "py/data"
SITE_DATASETS = ("names", "shakespeare")


def on_post_build(config: MkDocsConfig) -> None:
    repo_root = Path(config.config_file_path).resolve().parent
    if str(repo_root) not in sys.path:  # `mkdocs` run from a venv without the editable install
        sys.path.insert(0, str(repo_root))
    write_site_data(Path(config.site_dir) / DATA_DIR)


def write_site_data(out_dir: Path, data_dir: Path | None = None, names=SITE_DATASETS) -> dict:
    """Prepare (or find) each data set, copy its three files into out_dir, write index.json."""
    from pyscript_app.config import VOCAB_SIZE
    from pyscript_app.data.datasets import DatasetError, default_cache_dir
    from pyscript_app.data.prepare import load_prepared, prepared_paths
    from pyscript_app.data.tokenfile import TokenFileError

    data_dir = Path(data_dir) if data_dir is not None else default_cache_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    index: dict = {"datasets": {}}
    for name in names:
        try:
            tok, train, val = load_prepared(name, data_dir, VOCAB_SIZE)
        except (DatasetError, TokenFileError) as e:
            raise PluginError(f"site data set {name!r}: {e}") from None
        files = {}
        for kind, source in prepared_paths(name, data_dir).items():
            _link_or_copy(source, out_dir / source.name)
            files[kind] = source.name
        index["datasets"][name] = {
            "tokenizer_sha256": tok.sha256, "vocab_size": tok.vocab_size,
            "train_tokens": len(train), "val_tokens": len(val), "files": files,
        }
    (out_dir / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return index


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
