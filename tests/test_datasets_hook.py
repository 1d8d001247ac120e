"""site_src/hooks/datasets.py: the tokenized registry data sets the playground fetches from the site."""

from __future__ import annotations

import json
from types import ModuleType

import pytest

from _hooks import load_hook


@pytest.fixture(scope="module")
def hook() -> ModuleType:
    return load_hook("datasets.py")


def test_prepared_files_and_an_index_land_in_the_site(hook, data_mirror, tmp_path, monkeypatch):
    from pyscript_app.data.prepare import load_tokenizer
    from pyscript_app.data.tokenfile import read_tokens

    monkeypatch.setenv("TABGPT_DATA_MIRROR", str(data_mirror))
    cache, out = tmp_path / "cache", tmp_path / "site" / "py" / "data"
    index = hook.write_site_data(out, cache, names=("names",))
    assert json.loads((out / "index.json").read_text()) == index
    entry = index["datasets"]["names"]
    tok = load_tokenizer(out / entry["files"]["tokenizer"])
    assert tok.sha256 == entry["tokenizer_sha256"] and entry["vocab_size"] == 1024
    assert len(read_tokens(out / entry["files"]["train"], tok)) == entry["train_tokens"] > 0
    assert len(read_tokens(out / entry["files"]["val"], tok)) == entry["val_tokens"] > 0
    # a rebuild uses the prepared files in the cache: same tokenizer, no new preparation
    stamp = (cache / "names.tokenizer.json").stat().st_mtime_ns
    assert hook.write_site_data(out, cache, names=("names",)) == index
    assert (cache / "names.tokenizer.json").stat().st_mtime_ns == stamp


def test_unavailable_raw_data_fails_the_build_with_the_registry_message(hook, tmp_path, monkeypatch):
    from mkdocs.exceptions import PluginError

    monkeypatch.setenv("TABGPT_DATA_MIRROR", str(tmp_path / "empty"))
    with pytest.raises(PluginError, match="TABGPT_DATA_MIRROR=.* has no names.txt"):
        hook.write_site_data(tmp_path / "out", tmp_path / "cache", names=("names",))
