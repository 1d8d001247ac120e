"""pyscript_app/playground/store.py: checkpoints keyed by run, with an index of summaries."""

from __future__ import annotations

import asyncio

import pytest

from pyscript_app.playground.store import INDEX, CheckpointStore, MemoryFiles, checkpoint_name

KEY = "0123456789abcdef"


def test_save_then_summary_and_load():
    async def go():
        store = CheckpointStore(MemoryFiles())
        assert await store.summary(KEY) is None and await store.load(KEY) is None
        await store.save(KEY, b"blob-1", {"step": 10})
        await store.save(KEY, b"blob-22", {"step": 20})
        return await store.summary(KEY), await store.load(KEY)

    summary, blob = asyncio.run(go())
    assert summary == {"step": 20, "bytes": 7} and blob == b"blob-22"


def test_a_broken_index_counts_as_empty_and_is_rewritten():
    async def go():
        files = MemoryFiles()
        files.files[INDEX] = b"{not json"
        store = CheckpointStore(files)
        before = await store.index()
        await store.save(KEY, b"x", {"step": 1})
        return before, await store.index()

    before, after = asyncio.run(go())
    assert before == {} and after == {KEY: {"step": 1, "bytes": 1}}


def test_keys_are_checked_before_they_name_a_file():
    assert checkpoint_name(KEY) == f"run-{KEY}.tgpt"
    with pytest.raises(ValueError):
        checkpoint_name("../../etc")
