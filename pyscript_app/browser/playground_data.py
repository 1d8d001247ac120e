"""The playground's registry data sets, fetched from the site (py/data/, same origin) in the worker.

The site build wrote them (site_src/hooks/datasets.py); this reads them with tokenfile.read_tokens
through Pyodide's in-memory file system, so the browser checks them exactly as the CLI does.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from ..data.bpe import Tokenizer
from ..playground.textdata import DatasetTokens, registry_data
from ..data.tokenfile import read_tokens
from .jsutil import fetch_bytes, fetch_text

SCRATCH = Path("/tmp/tabgpt-data")


class SiteData:
    def __init__(self, url_of) -> None:
        self.url_of = url_of  # site path -> absolute URL
        self.index: dict = {}
        self._loaded: dict[str, asyncio.Future] = {}  # name -> the fetch of its DatasetTokens

    async def load_index(self) -> dict:
        self.index = json.loads(await fetch_text(self.url_of("py/data/index.json")))["datasets"]
        return self.index

    def data_id(self, name: str) -> str:
        return f"{name}:{self.index[name]['tokenizer_sha256']}"

    async def dataset(self, name: str) -> DatasetTokens:
        """The data set's tokens; fetched once (a second caller awaits the first's fetch)."""
        if name not in self._loaded:
            self._loaded[name] = asyncio.ensure_future(self._fetch(name))
        try:
            return await asyncio.shield(self._loaded[name])
        except Exception:
            self._loaded.pop(name, None)  # a failed fetch is tried again next time
            raise

    async def _fetch(self, name: str) -> DatasetTokens:
        files = self.index[name]["files"]
        raw = await asyncio.gather(*(fetch_bytes(self.url_of(f"py/data/{files[part]}"))
                                     for part in ("tokenizer", "train", "val")))  # in parallel
        tok = Tokenizer.from_json(raw[0])
        SCRATCH.mkdir(parents=True, exist_ok=True)
        splits = {}
        for split, data in zip(("train", "val"), raw[1:]):
            path = SCRATCH / files[split]
            path.write_bytes(data)
            splits[split] = read_tokens(path, tok)
            path.unlink()
        return registry_data(name, tok, splits["train"], splits["val"])
