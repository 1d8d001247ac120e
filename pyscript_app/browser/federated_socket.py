"""The browser's transport for federated/client.py: a JS WebSocket in the PyScript worker, and
Web Crypto's sha256 (Pyodide only: imports `js`).

    link = await open_link("ws://127.0.0.1:8765/ws")    # a client.Link; ConnectionError if it fails
    hex = await web_crypto_sha256(data)                  # crypto.subtle.digest("SHA-256", ...)

Frames arrive through the socket's `message` events, which the worker's event loop runs between
Python tasks; binaryType "arraybuffer" hands binary frames over as ArrayBuffers (one copy into
the wasm heap each), text frames as Python strings.
"""

from __future__ import annotations

import asyncio

import js
from pyodide.ffi import create_proxy

from ..federated.client import Closed, Link
from .jsutil import js_bytes, py_bytes

OPEN_TIMEOUT_S = 10.0
WS_OPEN = 1


class JsLink(Link):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.opened: asyncio.Future = asyncio.get_event_loop().create_future()
        self.ws = js.WebSocket.new(url)
        self.ws.binaryType = "arraybuffer"
        self._proxies = [create_proxy(self._on_open), create_proxy(self._on_message), create_proxy(self._on_close)]
        for event, proxy in zip(("open", "message", "close"), self._proxies):
            self.ws.addEventListener(event, proxy)

    def _on_open(self, _event) -> None:
        if not self.opened.done():
            self.opened.set_result(True)

    def _on_message(self, event) -> None:
        data = event.data
        self.inbox.put_nowait(data if isinstance(data, str) else py_bytes(data))

    def _on_close(self, event) -> None:
        code, reason = int(event.code), str(event.reason or "")
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"the relay refused or dropped the connection (code {code})"))
        self.inbox.put_nowait(Closed(code, reason))

    async def send(self, data) -> None:
        if int(self.ws.readyState) != WS_OPEN:
            raise ConnectionError("the connection is closed")
        self.ws.send(data if isinstance(data, str) else js_bytes(data))

    def close(self) -> None:
        if int(self.ws.readyState) <= WS_OPEN:
            self.ws.close(1000, "bye")


async def open_link(url: str) -> JsLink:
    """A connected JsLink (ConnectionError when the relay cannot be reached in time)."""
    link = JsLink(url)
    try:
        await asyncio.wait_for(link.opened, OPEN_TIMEOUT_S)
    except asyncio.TimeoutError:
        link.close()
        raise ConnectionError(f"no answer from {url} in {OPEN_TIMEOUT_S:g} s") from None
    return link


async def web_crypto_sha256(data) -> str:
    """Hex sha256 of bytes-like `data`, computed by the browser (crypto.subtle.digest)."""
    digest = await js.crypto.subtle.digest("SHA-256", js_bytes(data))
    return py_bytes(digest).hex()
