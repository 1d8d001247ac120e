"""The playground's checkpoint files in the Origin Private File System, from the worker
(navigator.storage.getDirectory): the read/write API playground/store.py's CheckpointStore needs.
Browser only (imports `js`)."""

from __future__ import annotations

import js
from pyodide.ffi import JsException

from .jsutil import js_bytes, js_get, js_object, py_bytes

FOLDER = "tabgpt-playground"


class OpfsFiles:
    def __init__(self, folder) -> None:
        self.folder = folder  # a FileSystemDirectoryHandle

    @classmethod
    async def open(cls) -> "OpfsFiles | None":
        """The playground's OPFS folder, or None where this browser offers no OPFS."""
        storage = js_get(js.navigator, "storage")
        if storage is None or js_get(storage, "getDirectory") is None:
            return None
        try:
            root = await storage.getDirectory()
            return cls(await root.getDirectoryHandle(FOLDER, js_object({"create": True})))
        except JsException:
            return None

    async def read(self, name: str) -> bytes | None:
        try:
            handle = await self.folder.getFileHandle(name)
        except JsException:  # NotFoundError
            return None
        file = await handle.getFile()
        return py_bytes(await file.arrayBuffer())

    async def write(self, name: str, data: bytes) -> None:
        handle = await self.folder.getFileHandle(name, js_object({"create": True}))
        writable = await handle.createWritable()  # the file changes only when close() commits
        await writable.write(js_bytes(data))
        await writable.close()
