"""Small FFI helpers for the browser host (Pyodide only: imports `js` and `pyodide.ffi`).

Tensors cross the FFI as bytes / JS typed arrays, never as Python lists (no numpy in the browser).
"""

from __future__ import annotations

from typing import Any

import js
import pyodide.ffi
from pyodide.ffi import JsProxy, to_js

_JS_NULL = getattr(pyodide.ffi, "jsnull", None)  # JS null when Pyodide does not map it to None


def is_nullish(value: Any) -> bool:
    """True for JS null / undefined as Pyodide hands them to Python (None, or pyodide.ffi.jsnull)."""
    return value is None or (_JS_NULL is not None and value is _JS_NULL)


def js_object(value: Any) -> Any:
    """A Python dict (nested dicts/lists, JS objects as leaves) as plain JS objects/arrays (descriptors)."""
    return to_js(value, dict_converter=js.Object.fromEntries)


def js_bytes(data) -> Any:
    """A Uint8Array holding a copy of bytes-like `data` (one memcpy out of the wasm heap, no list)."""
    return to_js(memoryview(data).cast("B"))


def py_bytes(array_buffer: JsProxy) -> bytes:
    """The bytes of a JS ArrayBuffer (or typed array): one memcpy into the wasm heap."""
    return array_buffer.to_bytes()


async def fetch_bytes(url: str) -> bytes:
    """GET a same-origin URL as bytes; raises OSError with the status on failure."""
    response = await js.fetch(url)
    if not response.ok:
        raise OSError(f"GET {url}: HTTP {response.status}")
    return py_bytes(await response.arrayBuffer())


async def fetch_text(url: str) -> str:
    response = await js.fetch(url)
    if not response.ok:
        raise OSError(f"GET {url}: HTTP {response.status}")
    return str(await response.text())


def js_get(obj: Any, name: str, default: Any = None) -> Any:
    """obj[name] or default when obj is missing, the member is absent, null or undefined."""
    value = None if is_nullish(obj) else getattr(obj, name, None)
    return default if is_nullish(value) else value
