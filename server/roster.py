"""A session's clients: ids, hashed resume tokens, connection flags and per-round data seeds."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass


def token_hash(token: str) -> str:
    """Tokens are stored (and checkpointed) only as their sha256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(24)  # 192 bits


class JoinRefused(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Client:
    client_id: str
    name: str
    token_hash: str
    joined_at: float
    connected: bool = False

    def public(self) -> dict:
        return {"client_id": self.client_id, "name": self.name, "joined": int(self.joined_at * 1000)}


class Roster:
    """Clients ever admitted (so they can resume), bounded to `keep` entries."""

    def __init__(self, max_connected: int, clients: list[Client] | None = None):
        self.max_connected = max_connected
        self.keep = 4 * max_connected
        self.clients: dict[str, Client] = {c.client_id: c for c in clients or []}

    def connected(self) -> list[Client]:
        return [c for c in self.clients.values() if c.connected]

    def connected_ids(self) -> tuple[str, ...]:
        return tuple(c.client_id for c in self.clients.values() if c.connected)

    def public(self) -> list[dict]:
        return [c.public() for c in self.connected()]

    def admit(self, name: str, client_token: str | None, now: float, protected: set[str]) -> tuple[Client, str, bool]:
        """(client, its token, was_connected). A token resumes its client (superseding a live
        connection); no token admits a new client. `protected` ids are never evicted."""
        if client_token is not None:
            wanted = token_hash(client_token)
            for c in self.clients.values():
                if hmac.compare_digest(c.token_hash, wanted):
                    was_connected = c.connected
                    c.connected = True
                    return c, client_token, was_connected
            raise JoinRefused("bad_token", "unknown client_token for this session")
        if len(self.connected()) >= self.max_connected:
            raise JoinRefused("session_full", f"session has its maximum of {self.max_connected} clients")
        self._evict(protected)
        token = new_token()
        client = Client(client_id="c" + secrets.token_hex(6), name=name, token_hash=token_hash(token),
                        joined_at=now, connected=True)
        self.clients[client.client_id] = client
        return client, token, False

    def _evict(self, protected: set[str]) -> None:
        """Forget the longest-known disconnected clients once the roster is full."""
        idle = [c for c in self.clients.values() if not c.connected and c.client_id not in protected]
        idle.sort(key=lambda c: c.joined_at)
        while len(self.clients) >= self.keep and idle:
            del self.clients[idle.pop(0).client_id]
        if len(self.clients) >= self.keep:
            raise JoinRefused("session_full", "session roster is full")

    def disconnect(self, client_id: str) -> bool:
        c = self.clients.get(client_id)
        if c is None or not c.connected:
            return False
        c.connected = False
        return True

    def to_list(self) -> list[dict]:
        return [{**asdict(c), "connected": False} for c in self.clients.values()]

    @classmethod
    def from_list(cls, max_connected: int, items: list[dict]) -> "Roster":
        return cls(max_connected, [Client(**item) for item in items])


def data_seed(secret: bytes, client_id: str, round: int, attempt: int) -> int:
    """u32 data seed for one client in one round start: unpredictable to others, never shared."""
    digest = hmac.new(secret, f"{client_id}/{round}/{attempt}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "little")
