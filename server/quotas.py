"""Per-address quotas: who a request comes from, and how much one address may hold or do.

The client's address is the TCP peer's, or, when `trusted_proxy_header` is configured (a relay
behind a reverse proxy), the last comma-separated entry of that header: the one the proxy itself
added (earlier entries are whatever the client claimed). An IPv6 address counts by its /64
network, which one host usually holds in full. Three quotas, each in `RelaySettings`:

- live sessions an address created (`max_sessions_per_address`), counted by the relay from each
  session's `creator`, so a deleted or expired session frees its place (and a restart keeps it);
- open WebSockets per address (`max_sockets_per_address`);
- session creates per address in any 60 s (`creates_per_minute`), a sliding window.

`Quotas` counts creates and sockets in one process's memory; a deployment of several processes on
Redis counts all three for the whole deployment instead (server/cluster_quotas.py).
"""

from __future__ import annotations

import ipaddress
import math
from collections import deque
from dataclasses import dataclass

from .settings import RelaySettings

WINDOW_S = 60.0
MAX_ADDRESS_CHARS = 64  # an unparsable header value is kept (as a key) only this long
SOCKET_RETRY_S = 10  # Retry-After for a refused WebSocket (sockets have no known end)


@dataclass(frozen=True)
class Refusal:
    reason: str  # sessions_per_address | creates_per_minute | sockets_per_address | max_sessions
    message: str
    retry_after: int  # whole seconds, at least 1


def address_key(address: str) -> str:
    """The quota key of an address: itself (IPv4), its /64 network (IPv6), else the raw text."""
    text = address.strip().strip('"')
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text[:MAX_ADDRESS_CHARS] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_address(scope: dict, settings: RelaySettings) -> str:
    """The quota key of an HTTP or WebSocket request (see the module's docstring)."""
    if settings.trusted_proxy_header:
        wanted = settings.trusted_proxy_header.strip().lower().encode("latin-1")
        values = [v for k, v in scope.get("headers") or [] if k.lower() == wanted]
        if values:
            last = values[-1].decode("latin-1").split(",")[-1].strip()
            if last:
                return address_key(last)
    client = scope.get("client")
    return address_key(client[0]) if client else "unknown"


def retry_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


class Quotas:
    """The creates-per-minute windows and open-socket counts (live sessions are the relay's)."""

    def __init__(self, settings: RelaySettings):
        self.settings = settings
        self.creates: dict[str, deque[float]] = {}
        self.sockets: dict[str, int] = {}

    def check_create(self, address: str, now: float) -> Refusal | None:
        """Refuse or count one create of `address` at `now` in its sliding 60 s window."""
        window = self._window(address, now)
        limit = self.settings.creates_per_minute
        if len(window) >= limit:
            return Refusal("creates_per_minute", f"at most {limit} sessions may be created per minute from "
                           "one address", retry_seconds(window[0] + WINDOW_S - now))
        window.append(now)
        if len(self.creates) > 4096:  # forget addresses whose window is empty (bounded memory)
            for key in [k for k, w in self.creates.items() if not w or w[-1] <= now - WINDOW_S]:
                del self.creates[key]
        return None

    def _window(self, address: str, now: float) -> deque[float]:
        window = self.creates.setdefault(address, deque())
        while window and window[0] <= now - WINDOW_S:
            window.popleft()
        return window

    def open_socket(self, address: str) -> Refusal | None:
        count = self.sockets.get(address, 0)
        limit = self.settings.max_sockets_per_address
        if count >= limit:
            return Refusal("sockets_per_address", f"at most {limit} open connections per address", SOCKET_RETRY_S)
        self.sockets[address] = count + 1
        return None

    def close_socket(self, address: str) -> None:
        count = self.sockets.get(address, 0) - 1
        if count > 0:
            self.sockets[address] = count
        else:
            self.sockets.pop(address, None)
