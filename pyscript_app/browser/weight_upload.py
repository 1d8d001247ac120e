"""Loads weight_upload.js (beside this file): the inference page's File -> GPU buffer streaming.
Browser only. Imported from a data: URL, as webgpu_executor.load_step_replay imports step_replay.js."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from pyodide.code import run_js


async def load_weight_upload():
    """The weight_upload.js module (uploadTensor, widen, hasFloat16Array)."""
    source = Path(__file__).with_name("weight_upload.js").read_text(encoding="utf-8")
    return await run_js("(url) => import(url)")("data:text/javascript;charset=utf-8," + quote(source))
