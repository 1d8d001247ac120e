"""GPT-2's tokenizer: byte-level BPE over GPT-2's pre-tokenizer, in pure Python (runs in Pyodide).

Encoding `text -> list[int]`:
  1. `pretokenize` (gpt2_pretokenize.py) cuts the text into chunks with GPT-2's pattern
     's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
  2. each chunk's UTF-8 bytes become printable characters through `bytes_to_unicode` (byte b -> one
     character; the vocabulary and merges files are written in these characters, " " is "Ġ");
  3. BPE: repeatedly merge the adjacent pair with the lowest rank (its line in the merges file),
     every occurrence of it left to right, until no adjacent pair is a merge;
  4. each resulting symbol is looked up in the vocabulary (50,257 entries for GPT-2).
Merges never cross a chunk, so step 3 is cached per chunk (`_cache`: a dict chunk -> ids).

Decoding `list[int] -> str`: ids -> their symbols -> bytes (the inverse of `bytes_to_unicode`) ->
UTF-8 with errors="replace" (U+FFFD for a cut or invalid sequence, as Hugging Face's ByteLevel
decoder does). `decode_bytes` gives the exact bytes.

"<|endoftext|>" (id 50256) is an ordinary vocabulary entry here: `encode` never produces it from text
(the text "<|endoftext|>" is encoded as its characters, as OpenAI's encoder.py and tiktoken's
`encode_ordinary` do); use `eot_id` to put it between documents.

Files. Hugging Face names them `vocab.json` + `merges.txt`, OpenAI `encoder.json` + `vocab.bpe`; the
formats are the same: a JSON object symbol -> id, and a "#version: 0.2" line then one merge "a b"
per line in rank order. Parsing works on text or bytes (`from_text`), so the browser can pass what
it fetched; `from_folder`/`from_files` only read files and call it.
"""

from __future__ import annotations

import json
import operator
from pathlib import Path
from typing import Iterable

from .gpt2_pretokenize import pretokenize

EOT_TEXT = "<|endoftext|>"

# (vocabulary file, merges file) in the order `from_folder` looks for them.
FILE_NAMES = (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe"))


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> character table: printable Latin-1 bytes stand for themselves, the other 68
    (controls, space, 0x7F-0xA0, 0xAD) get U+0100.. in byte order, so that no symbol in the files
    is whitespace or a control character."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _as_text(data: str | bytes) -> str:
    return data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data


def parse_merges(data: str | bytes) -> list[tuple[str, str]]:
    """Merges in rank order from a merges.txt / vocab.bpe text (header and blank lines skipped)."""
    merges = []
    # split("\n"), not splitlines(): that would also cut at U+0085, U+2028, ... (none occurs in
    # GPT-2's files, but a merges file is defined line by line on "\n").
    for number, line in enumerate(_as_text(data).split("\n"), start=1):
        line = line.rstrip("\r")
        if not line or (number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ValueError(f"merges line {number}: expected two symbols and one space, got {line!r}")
        merges.append((parts[0], parts[1]))
    return merges


class GPT2Tokenizer:
    """Byte-level BPE with GPT-2's pre-tokenizer; `encode(str) -> list[int]`, `decode(ids) -> str`."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]]):
        self.byte_encoder = bytes_to_unicode()
        missing = [sym for sym in self.byte_encoder.values() if sym not in vocab]
        if missing:
            raise ValueError(f"vocabulary lacks {len(missing)} of the 256 byte symbols, e.g. {missing[0]!r}")
        for a, b in merges:
            if a + b not in vocab:
                raise ValueError(f"merge {a!r} {b!r}: {a + b!r} is not in the vocabulary")
        self.vocab = vocab
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        n_ids = max(vocab.values()) + 1
        # id -> the bytes it stands for (None for an id no symbol has), so decoding is one join.
        byte_of = {sym: b for b, sym in self.byte_encoder.items()}
        self._id_bytes: list[bytes | None] = [None] * n_ids
        for sym, i in vocab.items():
            if all(ch in byte_of for ch in sym):
                self._id_bytes[i] = bytes(byte_of[ch] for ch in sym)
        self.eot_id = vocab.get(EOT_TEXT)
        # chunk -> its ids. Unbounded: a text has few distinct chunks (tiny shakespeare: ~25k).
        self._cache: dict[str, list[int]] = {}

    # ---- loading ------------------------------------------------------------------------------

    @classmethod
    def from_text(cls, vocab_json: str | bytes, merges: str | bytes) -> "GPT2Tokenizer":
        """From the two files' contents (vocab.json/encoder.json, merges.txt/vocab.bpe)."""
        vocab = json.loads(_as_text(vocab_json))
        if not isinstance(vocab, dict) or not all(type(v) is int and v >= 0 for v in vocab.values()):
            raise ValueError("vocabulary JSON must be an object mapping symbols to integer ids >= 0")
        return cls(vocab, parse_merges(merges))

    @classmethod
    def from_files(cls, vocab_path: str | Path, merges_path: str | Path) -> "GPT2Tokenizer":
        return cls.from_text(Path(vocab_path).read_bytes(), Path(merges_path).read_bytes())

    @classmethod
    def from_folder(cls, folder: str | Path) -> "GPT2Tokenizer":
        """From vocab.json + merges.txt (Hugging Face) or encoder.json + vocab.bpe (OpenAI)."""
        folder = Path(folder)
        for vocab_name, merges_name in FILE_NAMES:
            if (folder / vocab_name).is_file() and (folder / merges_name).is_file():
                return cls.from_files(folder / vocab_name, folder / merges_name)
        raise FileNotFoundError(f"{folder}: neither vocab.json + merges.txt nor encoder.json + vocab.bpe")

    # ---- encoding -----------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self._id_bytes)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        cache = self._cache
        for chunk in pretokenize(text):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = cache[chunk] = self._bpe(chunk)
            ids.extend(chunk_ids)
        return ids

    def _bpe(self, chunk: str) -> list[int]:
        """The ids of one pre-tokenized chunk (no cache)."""
        # UTF-8 bytes -> symbols in two C calls: decoding as Latin-1 turns byte b into U+00bb, which
        # byte_encoder (keyed by int) then translates to b's symbol.
        symbols = chunk.encode("utf-8").decode("latin-1").translate(self.byte_encoder)
        word = list(symbols)
        ranks = self.ranks
        while len(word) > 1:
            # The lowest-ranked adjacent pair; merge all its occurrences, left to right.
            best = min(zip(word, word[1:]), key=lambda pair: ranks.get(pair, 1 << 62))
            if best not in ranks:
                break
            first, second = best
            merged = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return [self.vocab[sym] for sym in word]

    # ---- decoding -----------------------------------------------------------------------------

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The exact bytes the ids stand for; ValueError for an id outside the vocabulary."""
        table = self._id_bytes
        parts = []
        for i in ids:
            i = operator.index(i)  # numpy integers too, but not floats
            piece = table[i] if 0 <= i < len(table) else None
            if piece is None:
                raise ValueError(f"token id {i} is not in the vocabulary (0..{len(table) - 1})")
            parts.append(piece)
        return b"".join(parts)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the ids; an incomplete or invalid UTF-8 sequence shows as U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")
