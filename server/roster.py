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
    left_at: float = 0.0  # when it last disconnected (its token stays live for the resume window)

    def public(self) -> dict:
        return {"client_id": self.client_id, "name": self.name, "joined": int(self.joined_at * 1000)}


class Roster:
    """Clients ever admitted (so they can resume), bounded to `keep` entries.

    At most `max_connected` are connected at once, resumes included. A client that left less than
    `resume_window_s` ago holds a live token: newcomers never evict it (a full roster of live
    tokens refuses newcomers instead), so a burst of joins cannot break a brief reconnect."""

    def __init__(self, max_connected: int, clients: list[Client] | None = None, resume_window_s: float = 120.0):
        self.max_connected = max_connected
        self.keep = 4 * max_connected
        self.resume_window_s = resume_window_s
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
                    if not was_connected and len(self.connected()) >= self.max_connected:
                        raise JoinRefused("session_full", f"session has its maximum of {self.max_connected} clients")
                    c.connected = True
                    return c, client_token, was_connected
            raise JoinRefused("bad_token", "unknown client_token for this session")
        if len(self.connected()) >= self.max_connected:
            raise JoinRefused("session_full", f"session has its maximum of {self.max_connected} clients")
        self._evict(protected, now)
        token = new_token()
        client = Client(client_id="c" + secrets.token_hex(6), name=name, token_hash=token_hash(token),
                        joined_at=now, connected=True)
        self.clients[client.client_id] = client
        return client, token, False

    def _evict(self, protected: set[str], now: float) -> None:
        """Once the roster is full, forget the clients that left longest ago, past their resume window."""
        idle = [c for c in self.clients.values() if not c.connected and c.client_id not in protected
                and now - c.left_at >= self.resume_window_s]
        idle.sort(key=lambda c: c.left_at)
        while len(self.clients) >= self.keep and idle:
            del self.clients[idle.pop(0).client_id]
        if len(self.clients) >= self.keep:
            raise JoinRefused("session_full", "session roster is full of clients that may still resume")

    def disconnect(self, client_id: str, now: float) -> bool:
        c = self.clients.get(client_id)
        if c is None or not c.connected:
            return False
        c.connected, c.left_at = False, now
        return True

    def restarted(self, now: float) -> None:
        """After a relay restart every known client gets a fresh resume window."""
        for c in self.clients.values():
            c.connected, c.left_at = False, max(c.left_at, now)

    def to_list(self) -> list[dict]:
        return [{**asdict(c), "connected": False} for c in self.clients.values()]

    @classmethod
    def from_list(cls, max_connected: int, items: list[dict]) -> "Roster":
        return cls(max_connected, [Client(**item) for item in items])


def data_seed(secret: bytes, client_id: str, round: int, attempt: int) -> int:
    """u32 data seed for one client in one round start: unpredictable to others, never shared."""
    digest = hmac.new(secret, f"{client_id}/{round}/{attempt}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "little")
