"""Checkpoints of playground runs, keyed by run (Settings.run_key), over a tiny async file API.

    store = CheckpointStore(files)           # files: OPFS in the browser, MemoryFiles in tests
    await store.save(key, blob, {"step": 40, "steps": 200, "model": "nano", ...})
    await store.summary(key)                 # that dict (+ "bytes"), or None: is there a run to resume?
    await store.load(key)                    # the checkpoint bytes, or None

Files: `run-<key>.tgpt` (train/checkpoint.py's format, the CLI reads it) and `runs.json`, the index of
summaries (so the page learns whether a run exists without reading a whole checkpoint). The index is
written after the checkpoint: a crash between the two leaves a checkpoint that is simply not listed.
"""

from __future__ import annotations

import json
import re

INDEX = "runs.json"
KEY_PATTERN = re.compile(r"[0-9a-f]{16}")


class MemoryFiles:
    """The file API CheckpointStore needs, in memory (tests; browsers without OPFS)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def read(self, name: str) -> bytes | None:
        return self.files.get(name)

    async def write(self, name: str, data: bytes) -> None:
        self.files[name] = bytes(data)


def checkpoint_name(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError(f"run key must be 16 hex digits, got {key!r}")
    return f"run-{key}.tgpt"


class CheckpointStore:
    def __init__(self, files) -> None:
        self.files = files

    async def index(self) -> dict[str, dict]:
        """key -> summary; an unreadable index counts as empty (it is only a cache of what exists)."""
        raw = await self.files.read(INDEX)
        try:
            data = json.loads(raw) if raw else {}
        except (ValueError, UnicodeDecodeError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if KEY_PATTERN.fullmatch(str(k)) and isinstance(v, dict)}

    async def summary(self, key: str) -> dict | None:
        return (await self.index()).get(key)

    async def save(self, key: str, blob: bytes, summary: dict) -> None:
        await self.files.write(checkpoint_name(key), blob)
        index = await self.index()
        index[key] = {**summary, "bytes": len(blob)}
        await self.files.write(INDEX, json.dumps(index, sort_keys=True).encode())

    async def load(self, key: str) -> bytes | None:
        if key not in await self.index():
            return None
        return await self.files.read(checkpoint_name(key))
