"""The playground's data: a registry data set's prepared files, or text the user pastes or uploads.

    text = check_text(raw)                       # InputError: empty, binary or oversized
    data = prepare_text(text)                    # the BPE trains here (in the page's worker)
    data.check_fits(T)                           # InputError when a split is shorter than a window

Pasted text goes through the same path as `tabgpt data`: splits.infer_kind / split_documents,
the BPE trained on the train split only, Tokenizer.encode_docs for both splits.
"""

from __future__ import annotations

import hashlib
from array import array
from dataclasses import dataclass
from typing import Callable

from ..data.bpe import DEFAULT_VOCAB_SIZE, Tokenizer, normalize
from ..data.splits import infer_kind, split_documents
from .settings import InputError

MAX_TEXT_BYTES = 2 << 20  # 2 MiB: BPE training in Pyodide stays within seconds
MIN_TEXT_CHARS = 200
MAX_CONTROL_FRACTION = 0.01  # more control characters than this: not text


@dataclass(frozen=True)
class DatasetTokens:
    """A data set ready to train on: train / val are array('H') streams of [BOS] doc [BOS] doc ..."""

    name: str
    tokenizer: Tokenizer
    train: array
    val: array
    data_id: str  # identity for run keys: "<name>:<tokenizer sha256>" or "text:<text sha256>"

    def check_fits(self, T: int) -> None:
        """InputError unless train holds a window of T+1 tokens plus one and val a window of T+1."""
        if len(self.train) < T + 2 or len(self.val) < T + 1:
            raise InputError(
                f"the {self.name} text is too short for a context of {T}: train has {len(self.train)} "
                f"tokens, val {len(self.val)} (paste more text or lower the context)")


def check_text(raw: bytes | str, source: str = "the text") -> str:
    """The normalised text, or InputError when it is empty, too large, or not text."""
    data = raw.encode("utf-8", errors="surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(data) > MAX_TEXT_BYTES:
        raise InputError(f"{source} is {len(data) / 2**20:.1f} MiB; the playground takes at most "
                         f"{MAX_TEXT_BYTES >> 20} MiB (use `tabgpt data` for larger files)")
    if b"\0" in data:
        raise InputError(f"{source} looks binary (it contains NUL bytes); give UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{source} is not UTF-8 text (bad byte at offset {e.start})") from None
    control = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t")
    if control > MAX_CONTROL_FRACTION * max(1, len(text)):
        raise InputError(f"{source} looks binary ({control} control characters); give UTF-8 text")
    text = normalize(text)
    if not text.strip():
        raise InputError(f"{source} is empty: paste or upload some text first")
    if len(text) < MIN_TEXT_CHARS:
        raise InputError(f"{source} has {len(text)} characters; give at least {MIN_TEXT_CHARS}")
    return text


def text_data_id(text: str) -> str:
    return "text:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def prepare_text(text: str, vocab_size: int = DEFAULT_VOCAB_SIZE,
                 progress: Callable[[int, int], None] | None = None, name: str = "custom") -> DatasetTokens:
    """Split, train the BPE on the train split, encode both splits (text already check_text'ed)."""
    train_docs, val_docs = split_documents(text, infer_kind(text))
    if not train_docs or not val_docs:
        raise InputError(f"the {name} text is too short to split into train and val")
    tok = Tokenizer.train(train_docs, vocab_size, progress)
    return DatasetTokens(name, tok, array("H", tok.encode_docs(train_docs)),
                         array("H", tok.encode_docs(val_docs)), text_data_id(text))


def registry_data(name: str, tokenizer: Tokenizer, train: array, val: array) -> DatasetTokens:
    """A prepared registry data set (the site's py/data/ files, already read and checked)."""
    return DatasetTokens(name, tokenizer, train, val, f"{name}:{tokenizer.sha256}")
