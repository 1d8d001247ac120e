"""The dataset registry: where raw text comes from (a path, a mirror, the cache or a download).

Pure Python (no numpy). How a text splits into documents and train/val lives in splits.py.

Registry (name -> file, sha256, canonical URL; byte-identical copies of the sources):
    names        names.txt        one lowercase name per line (karpathy/makemore)
    shakespeare  shakespeare.txt  "tiny shakespeare" (karpathy/char-rnn)

`load_text(name_or_path)` resolves, in this order:
    1. an existing path to a `.txt` file (UTF-8, non-empty);
    2. a registry name, from `$TABGPT_DATA_MIRROR/<file>` when that variable is set
       (sha256 checked; a mismatch or a missing file is an error, never a download);
    3. else the cache dir (`data_dir`, else `$XDG_CACHE_HOME/tabgpt/data`, else
       `~/.cache/tabgpt/data`) when the file is there with the right sha256;
    4. else a download into the cache (temp file + rename, sha256 checked).
The text is returned `normalize`d (newlines only, see bpe.normalize).

"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from .bpe import normalize
from .splits import infer_kind

MIRROR_ENV = "TABGPT_DATA_MIRROR"


class DatasetError(ValueError):
    """The text could not be found, fetched or read; the message is meant for a user."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    filename: str
    url: str
    sha256: str
    n_bytes: int
    kind: str  # "lines" or "stream"


REGISTRY: dict[str, DatasetSpec] = {
    "names": DatasetSpec(
        "names",
        "names.txt",
        "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
        "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
        228_145,
        "lines",
    ),
    "shakespeare": DatasetSpec(
        "shakespeare",
        "shakespeare.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        1_115_394,
        "stream",
    ),
}


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # registry name, or the file stem of a path
    kind: str  # "lines" or "stream"
    source: str  # the file the text was read from
    sha256: str  # of the raw bytes
    n_bytes: int  # raw bytes


def default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "tabgpt" / "data"


def fetch_url(url: str, timeout: float = 60.0) -> bytes:
    """The only network access in this module (tests replace it). Raises OSError when offline."""
    import urllib.request  # lazy: the browser never downloads through here

    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def dataset_name(name_or_path: str) -> str:
    """The NAME used for prepared files: the registry name, or the stem of a .txt path."""
    if name_or_path in REGISTRY and not name_or_path.endswith(".txt"):
        return name_or_path
    return Path(name_or_path).stem


def load_text(name_or_path: str, data_dir: Path | str | None = None) -> tuple[str, DatasetInfo]:
    """Return (normalised text, info) for a registry name or a .txt path (see the module doc)."""
    path = Path(name_or_path)
    if path.suffix.lower() == ".txt":
        return _load_path(path)
    spec = REGISTRY.get(name_or_path)
    if spec is None:
        choices = ", ".join(REGISTRY)
        if path.is_file():
            raise DatasetError(f"{path} is not a .txt file (give a UTF-8 .txt file or one of {choices})")
        raise DatasetError(f"unknown dataset {name_or_path!r}: choose {choices} or a path to a .txt file")
    raw, source = _registry_bytes(spec, Path(data_dir) if data_dir is not None else default_cache_dir())
    text = _decode(raw, source)
    return text, DatasetInfo(spec.name, spec.kind, source, spec.sha256, len(raw))


def _load_path(path: Path) -> tuple[str, DatasetInfo]:
    if not path.is_file():
        raise DatasetError(f"no such file: {path}")
    raw = path.read_bytes()
    text = _decode(raw, str(path))
    info = DatasetInfo(path.stem, infer_kind(text), str(path), _sha256(raw), len(raw))
    return text, info


def _registry_bytes(spec: DatasetSpec, cache_dir: Path) -> tuple[bytes, str]:
    """The verified bytes of a registry file and where they came from."""
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        path = Path(mirror) / spec.filename
        if not path.is_file():
            raise DatasetError(f"{MIRROR_ENV}={mirror} has no {spec.filename}")
        raw = path.read_bytes()
        if _sha256(raw) != spec.sha256:
            raise DatasetError(
                f"{path} has sha256 {_sha256(raw)[:12]}, expected {spec.sha256[:12]} "
                f"(not the canonical {spec.filename})"
            )
        return raw, str(path)

    cached = cache_dir / spec.filename
    if cached.is_file():
        raw = cached.read_bytes()
        if _sha256(raw) == spec.sha256:
            return raw, str(cached)
        # a corrupted or truncated cache file: fetch it again below

    try:
        raw = fetch_url(spec.url)
    except OSError as e:  # urllib.error.URLError is an OSError, and so are timeouts
        raise DatasetError(
            f"could not download {spec.name} from {spec.url} ({e}); when offline, set "
            f"{MIRROR_ENV} to a folder holding names.txt / shakespeare.txt"
        ) from None
    if _sha256(raw) != spec.sha256:
        raise DatasetError(
            f"download of {spec.url} has sha256 {_sha256(raw)[:12]}, expected {spec.sha256[:12]}"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{spec.filename}.{os.getpid()}.tmp")
    tmp.write_bytes(raw)
    os.replace(tmp, cached)  # atomic: a reader never sees half a file
    return raw, str(cached)


def _decode(raw: bytes, source: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{source} is not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise DatasetError(f"{source} is empty")
    return normalize(text)


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()
