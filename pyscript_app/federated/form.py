"""What the federated page asks: the create-session form, a session id or link, the relay's URLs.

Pure Python. Every problem is one readable line (InputError); the relay checks the session's
config again and its 422 reasons are shown as they come (relay_error_text).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from ..config import PRESETS
from ..playground.settings import InputError

SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
AGGREGATORS = ("fedavg", "diloco")
# (form field, JSON key, kind, lowest, highest)
NUMBERS = (
    ("quorum", "quorum", int, 1, 32),
    ("round_seconds", "round_seconds", float, 1.0, 86400.0),
    ("grace_seconds", "grace_seconds", float, 0.0, 86400.0),
    ("max_local_steps", "max_local_steps", int, 1, 10_000),
    ("batch", "batch", int, 1, 512),
)

__all__ = ["InputError", "session_body", "session_id_from", "join_secret_from", "share_url", "relay_urls",
           "relay_error_text"]
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def _number(form: dict, field: str, kind, lo, hi):
    raw = str(form.get(field, "")).strip()
    label = field.replace("_", " ")
    try:
        value = kind(raw)
    except ValueError:
        raise InputError(f"{label} must be a {'whole ' if kind is int else ''}number, got {raw!r}") from None
    if not lo <= value <= hi:
        show = str if kind is int else (lambda v: f"{v:g}")  # 1000000, not 1e+06
        raise InputError(f"{label} must be between {show(lo)} and {show(hi)}, got {raw}")
    return value


def session_body(form: dict, datasets: dict) -> dict:
    """The POST /api/sessions body from the form. `datasets` is the site's py/data/index.json
    "datasets" (the tokenizer every client of the session must use comes from it)."""
    model, dataset = str(form.get("model", "")), str(form.get("dataset", ""))
    if model not in PRESETS:
        raise InputError(f"model must be one of {', '.join(PRESETS)}")
    if dataset not in datasets:
        raise InputError(f"data set must be one of {', '.join(sorted(datasets))}")
    aggregator = str(form.get("aggregator", "fedavg"))
    if aggregator not in AGGREGATORS:
        raise InputError("aggregator must be FedAvg or DiLoCo")
    # the page's sessions need the join secret its share link carries (the relay makes it)
    body = {"model": model, "dataset": dataset, "aggregator": aggregator, "require_join_secret": True,
            "tokenizer_sha256": datasets[dataset]["tokenizer_sha256"],
            "vocab_size": int(datasets[dataset]["vocab_size"])}
    for field, key, kind, lo, hi in NUMBERS:
        body[key] = _number(form, field, kind, lo, hi)
    if body["grace_seconds"] >= body["round_seconds"]:
        raise InputError("the grace period must be shorter than the round")
    if str(form.get("rounds", "")).strip():  # optional: the planned length the clients' lr decays over
        body["rounds"] = _number(form, "rounds", int, 1, 1_000_000)
    return body


def session_id_from(text: str) -> str:
    """A session id from what a user pasted: the id itself, or a link holding ?session=<id>."""
    text = text.strip()
    if "session=" in text or "://" in text:
        ids = parse_qs(urlsplit(text).query).get("session", [])
        text = ids[0].strip() if ids else ""
        if not text:
            raise InputError("that link holds no ?session=<id>")
    if not SESSION_ID_RE.match(text):
        raise InputError("a session id is 8 to 64 letters, digits, '-' or '_' (or paste the session's link)")
    return text


def join_secret_from(text: str) -> str | None:
    """The join secret of a pasted share link (its #key=<secret>), or None."""
    fragment = urlsplit(text.strip()).fragment if "#" in text else ""
    keys = parse_qs(fragment).get("key", [])
    return keys[0] if keys and SECRET_RE.match(keys[0]) else None


def share_url(page_url: str, session_id: str, join_secret: str | None = None) -> str:
    """The page's URL with ?session=<id>, and #key=<secret> when the session has a join secret (a
    fragment: browsers never send it to the site's server). Other query parameters are dropped."""
    parts = urlsplit(page_url)
    fragment = urlencode({"key": join_secret}) if join_secret else ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode({"session": session_id}), fragment))


def relay_urls(relay_url: str) -> tuple[str, str]:
    """(REST base, WebSocket URL) of a relay at http(s)://host[:port][/prefix]."""
    parts = urlsplit(relay_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"the relay URL must look like http://host:port, got {relay_url!r}")
    base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    ws = urlunsplit(("wss" if parts.scheme == "https" else "ws", parts.netloc, parts.path.rstrip("/") + "/ws", "", ""))
    return base, ws


def relay_error_text(status: int, body: object) -> str:
    """One line for a failed REST call: the relay's reasons when it gave some."""
    detail = body.get("detail") if isinstance(body, dict) else None
    reasons = "; ".join(str(d) for d in detail) if isinstance(detail, list) else str(detail or "")
    if status == 404:
        return "The relay has no such session (it ended, or the id is mistyped)."
    if status == 422:
        return f"The relay refused these settings: {reasons}."
    if status == 429 and isinstance(body, dict) and body.get("reason") in ("sessions_per_address", "creates_per_minute"):
        return f"The relay limits the sessions one address may create: {reasons}."
    if status == 429:
        return f"The relay is full: {reasons or 'too many sessions'}. Try again later."
    return f"The relay answered HTTP {status}{': ' + reasons if reasons else ''}."
