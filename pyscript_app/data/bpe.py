"""Byte-level BPE tokenizer: ids 0..255 are bytes, then learned merges, then two specials.

Pure Python (no numpy, no `regex` module): it also runs in the browser under Pyodide, on text a
user pastes into a page.

Vocabulary of size V (1024 by default):
    0 .. 255          the 256 byte values
    256 .. V-3        merges in the order they were learned (id 256 + k is merge k)
    V-2               BOS: begins every document (see `encode_docs`)
    V-1               EOS: reserved (no data stream contains it today)
V stays fixed (it is the model's shape) even when the training text runs out of pairs early: the
number of merges actually learned is `n_merges`, the unused ids in between decode to b"".

Segmentation (pre-tokenization). Text is first cut into chunks by `SEGMENT_PATTERN`, a GPT-2/4
style regex written for Python's `re` (letters are `[^\\W\\d_]`, since `re` has no `\\p{L}`);
merges never cross a chunk boundary. TRAINING SEGMENTS EXACTLY AS ENCODING DOES (the same
`segment` function), so every learned merge is applied when the training text is encoded: no
vocabulary is spent on pairs that encoding never sees.

Normalisation. `normalize` only turns "\\r\\n" and lone "\\r" into "\\n". Callers apply it to
training text (datasets.load_text does) AND to user prompts, so both see the same text. `encode`
itself never normalises: it round-trips any input exactly.

Round trip: `decode_bytes(encode_bytes(b)) == b` for ANY bytes, and `decode(encode(s)) == s` for
any str that UTF-8 can encode. `decode` of ids that end inside a UTF-8 sequence shows U+FFFD
(errors="replace"); `decode_bytes` is always exact.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from typing import Callable, Iterable, Sequence

DEFAULT_VOCAB_SIZE = 1024
N_BYTES = 256
N_SPECIALS = 2
FORMAT_NAME = "tabgpt-bpe"
FORMAT_VERSION = 1

# One alternative per chunk kind, tried left to right at each position.
SEGMENT_PATTERN = (
    r"'(?:s|t|re|ve|m|ll|d)"  # English contractions: 's 't 're 've 'm 'll 'd
    r"| ?[^\W\d_]+"  # a word: letters, with one optional leading space
    r"| ?\d{1,3}"  # digits, at most three per chunk
    r"| ?(?:[^\w\s]|_)+\n*"  # punctuation / symbols with an optional leading space, then the
    #                          newlines that end its line (":\n" after a speaker, ".\n\n")
    r"|\s*\n"  # whitespace that ends a line (blank lines stay together: "\n\n")
    r"|\s+(?!\S)"  # spaces, leaving the last one to lead the next word
    r"|\s+"  # any whitespace left over
)
_SEGMENT_RE = re.compile(SEGMENT_PATTERN)

# Bound the per-chunk encode cache so pasted text cannot grow it without limit.
_CACHE_LIMIT = 200_000


class TokenizerError(ValueError):
    """Bad tokenizer data (JSON, ids, vocab size); the message is one line meant for a user."""


def normalize(text: str) -> str:
    """The only normalisation, shared by training text and prompts: newlines become "\\n"."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def segment(text: str) -> list[str]:
    """Cut text into the chunks that BPE works inside. "".join(segment(t)) == t for every t."""
    return _SEGMENT_RE.findall(text)


def _merge_pair(ids: Sequence[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair`, scanning left to right without overlaps."""
    a, b = pair
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def count_chunks(docs: Iterable[str]) -> dict[bytes, int]:
    """Unique chunks (as UTF-8 bytes) of all documents with their frequencies, first-seen order."""
    counts: dict[bytes, int] = {}
    for doc in docs:
        for chunk in segment(doc):
            key = chunk.encode("utf-8")
            counts[key] = counts.get(key, 0) + 1
    return counts


def learn_merges(
    chunk_counts: dict[bytes, int],
    n_merges: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[int, int]]:
    """Learn up to `n_merges` merges from chunk frequencies; fewer if the pairs run out.

    Incremental: pair -> count and pair -> ids of chunks containing it are built once; a merge
    rewrites only the chunks that contain its pair and adjusts the counts of the pairs it touched.
    The best pair comes from a max-heap with lazy deletion (an entry is stale when its count is no
    longer the pair's count). Ties go to the smallest pair (a, b), so training is deterministic.
    """
    words = [list(chunk) for chunk in chunk_counts]  # each chunk as symbol ids, bytes at first
    freqs = list(chunk_counts.values())
    pair_count: dict[tuple[int, int], int] = {}
    pair_where: dict[tuple[int, int], set[int]] = {}
    for w_id, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_count[pair] = pair_count.get(pair, 0) + freq
            pair_where.setdefault(pair, set()).add(w_id)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    while len(merges) < n_merges and heap:
        neg_count, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -neg_count:
            continue  # stale entry: the pair's count changed after this was pushed
        new_id = N_BYTES + len(merges)
        merges.append(pair)
        touched: set[tuple[int, int]] = set()
        for w_id in pair_where.pop(pair):
            old, freq = words[w_id], freqs[w_id]
            new = _merge_pair(old, pair, new_id)
            old_pairs, new_pairs = list(zip(old, old[1:])), list(zip(new, new[1:]))
            for p in old_pairs:
                pair_count[p] -= freq
            for p in new_pairs:
                pair_count[p] = pair_count.get(p, 0) + freq
            old_set, new_set = set(old_pairs), set(new_pairs)
            for p in old_set - new_set:
                if p != pair:
                    pair_where[p].discard(w_id)
            for p in new_set - old_set:
                pair_where.setdefault(p, set()).add(w_id)
            touched |= old_set
            touched |= new_set
            words[w_id] = new
        for p in touched:
            c = pair_count[p]
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                del pair_count[p]
                pair_where.pop(p, None)
        if progress is not None and (len(merges) % 64 == 0 or len(merges) == n_merges):
            progress(len(merges), n_merges)
    return merges


class Tokenizer:
    """A trained (or byte-only, with no merges) BPE tokenizer. Immutable after construction."""

    def __init__(self, merges: Sequence[Sequence[int]] = (), vocab_size: int = DEFAULT_VOCAB_SIZE):
        if not isinstance(vocab_size, int) or not (N_BYTES + N_SPECIALS <= vocab_size <= 65536):
            raise TokenizerError(f"vocab_size must be an integer in [258, 65536], got {vocab_size!r}")
        max_merges = vocab_size - N_BYTES - N_SPECIALS
        if len(merges) > max_merges:
            raise TokenizerError(f"{len(merges)} merges do not fit in vocab_size {vocab_size}")
        self.vocab_size = vocab_size
        self.bos = vocab_size - 2
        self.eos = vocab_size - 1
        self.merges: tuple[tuple[int, int], ...] = ()
        pieces = [bytes([b]) for b in range(N_BYTES)]
        checked = []
        for k, pair in enumerate(merges):
            if (
                len(pair) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
                or not all(0 <= x < N_BYTES + k for x in pair)
            ):
                raise TokenizerError(f"merge {k} {list(pair)!r} must join two earlier ids")
            a, b = pair
            checked.append((a, b))
            pieces.append(pieces[a] + pieces[b])
        self.merges = tuple(checked)
        # (a, b) -> merged id; the merged id is 256 + rank, so the smallest id is the earliest merge.
        self._merged_id = {p: N_BYTES + k for k, p in enumerate(self.merges)}
        pieces += [b""] * (vocab_size - len(pieces))  # unused merge slots and the two specials
        self._pieces = pieces
        self._cache: dict[str, tuple[int, ...]] = {}
        self._sha256 = hashlib.sha256(_canonical(self._fields())).hexdigest()

    # ---- training -------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        text_or_docs: str | Sequence[str],
        vocab_size: int = DEFAULT_VOCAB_SIZE,
        progress: Callable[[int, int], None] | None = None,
    ) -> "Tokenizer":
        """Learn merges from a text (one document) or a list of documents. Returns a new Tokenizer.

        Pass the TRAIN split only, already `normalize`d. Chunks never span two documents."""
        docs = [text_or_docs] if isinstance(text_or_docs, str) else list(text_or_docs)
        if not (isinstance(vocab_size, int) and vocab_size >= N_BYTES + N_SPECIALS):
            raise TokenizerError(f"vocab_size must be an integer >= 258, got {vocab_size!r}")
        n_merges = vocab_size - N_BYTES - N_SPECIALS
        merges = learn_merges(count_chunks(docs), n_merges, progress)
        return cls(merges, vocab_size)

    @property
    def n_merges(self) -> int:
        """Merges actually learned (vocab_size - 258 unless the training text ran out of pairs)."""
        return len(self.merges)

    # ---- encoding -------------------------------------------------------------------------

    def _encode_chunk(self, chunk: str) -> tuple[int, ...]:
        """Apply merges by rank: repeatedly merge the adjacent pair that was learned first."""
        ids = list(chunk.encode("utf-8", errors="surrogateescape"))
        merged_id = self._merged_id
        while len(ids) >= 2:
            best = min(zip(ids, ids[1:]), key=lambda p: merged_id.get(p, 1 << 30))
            new_id = merged_id.get(best)
            if new_id is None:
                break
            ids = _merge_pair(ids, best, new_id)
        return tuple(ids)

    def encode_bytes(self, data: bytes) -> list[int]:
        """Any bytes -> ids. Invalid UTF-8 is carried through `surrogateescape`, so it is exact."""
        text = bytes(data).decode("utf-8", errors="surrogateescape")
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        out: list[int] = []
        for chunk in segment(text):
            ids = cache.get(chunk)
            if ids is None:
                ids = cache[chunk] = self._encode_chunk(chunk)
            out.extend(ids)
        return out

    def encode(self, text: str) -> list[int]:
        """str -> ids (UTF-8 bytes underneath). No normalisation: see `normalize`."""
        return self.encode_bytes(text.encode("utf-8"))

    def encode_docs(self, docs: Iterable[str]) -> list[int]:
        """The training stream: [BOS] doc1 [BOS] doc2 ... [BOS] docN.

        Every document is preceded by BOS and nothing follows the last one. A model that predicts
        BOS therefore says "this document ends here" (makemore's '.'); a sampler starts from [BOS]
        and stops when it generates BOS. A one-document data set is one BOS up front."""
        out: list[int] = []
        for doc in docs:
            out.append(self.bos)
            out.extend(self.encode(doc))
        return out

    # ---- decoding -------------------------------------------------------------------------

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one id stands for (b"" for the specials and unused merge slots)."""
        if not (0 <= token_id < self.vocab_size):
            raise TokenizerError(f"token id {token_id} is outside the vocabulary [0, {self.vocab_size})")
        return self._pieces[token_id]

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Exact inverse of `encode_bytes` (specials contribute nothing)."""
        ids = list(ids)
        if ids and (min(ids) < 0 or max(ids) >= self.vocab_size):
            bad = next(i for i in ids if not (0 <= i < self.vocab_size))
            raise TokenizerError(f"token id {bad} is outside the vocabulary [0, {self.vocab_size})")
        pieces = self._pieces
        return b"".join([pieces[i] for i in ids])

    def decode(self, ids: Iterable[int]) -> str:
        """ids -> str; a sequence cut inside a UTF-8 character shows U+FFFD there."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def bytes_of_tokens(self, ids: Iterable[int]) -> int:
        """Bytes of text the ids stand for, counting each special token as ONE byte.

        A special stands for the newline / end that separates documents (names.txt has one "\\n"
        per name, and the stream one BOS per name), so nats per byte = loss * tokens / this."""
        pieces, specials = self._pieces, (self.bos, self.eos)
        return sum(1 if i in specials else len(pieces[i]) for i in ids)

    def applied_merges(self, ids: Iterable[int]) -> set[int]:
        """Merge ids applied while encoding `ids`: the final tokens and everything they were built from.

        A merge can be applied and then absorbed by a later one (" th" inside " the"), so it need
        not appear in `ids` itself; this walks each merged token back down to bytes."""
        seen: set[int] = set()
        stack = [i for i in set(ids) if N_BYTES <= i < N_BYTES + self.n_merges]
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            stack.extend(x for x in self.merges[t - N_BYTES] if x >= N_BYTES)
        return seen

    # ---- serialisation --------------------------------------------------------------------

    def _fields(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "vocab_size": self.vocab_size,
            "merges": [list(p) for p in self.merges],
            "specials": {"bos": self.bos, "eos": self.eos},
            "pattern": SEGMENT_PATTERN,
        }

    @property
    def sha256(self) -> str:
        """Hex sha256 of the canonical JSON of every field except sha256 itself."""
        return self._sha256

    def to_json(self) -> str:
        d = self._fields()
        d["sha256"] = self._sha256
        return json.dumps(d, indent=None, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "Tokenizer":
        """Parse and check a tokenizer JSON (untrusted input: every field is validated)."""
        try:
            d = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise TokenizerError(f"tokenizer JSON does not parse: {e}") from None
        if not isinstance(d, dict):
            raise TokenizerError("tokenizer JSON must be an object")
        if d.get("format") != FORMAT_NAME or d.get("version") != FORMAT_VERSION:
            raise TokenizerError(
                f"not a {FORMAT_NAME} v{FORMAT_VERSION} tokenizer "
                f"(format={d.get('format')!r}, version={d.get('version')!r})"
            )
        if d.get("pattern") != SEGMENT_PATTERN:
            raise TokenizerError("tokenizer uses a segmentation pattern this version does not know")
        merges, vocab_size = d.get("merges"), d.get("vocab_size")
        if not isinstance(merges, list) or not all(isinstance(m, list) for m in merges):
            raise TokenizerError("tokenizer 'merges' must be a list of [a, b] pairs")
        tok = cls(merges, vocab_size)
        if d.get("specials") != {"bos": tok.bos, "eos": tok.eos}:
            raise TokenizerError(f"tokenizer specials must be bos={tok.bos}, eos={tok.eos}")
        if "sha256" in d and d["sha256"] != tok.sha256:
            raise TokenizerError(f"tokenizer sha256 {str(d['sha256'])[:12]} does not match its content")
        return tok

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, n_merges={self.n_merges}, sha256={self.sha256[:12]})"


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def compression_stats(tok: Tokenizer, text: str) -> dict:
    """How well `tok` compresses `text`: {"bytes", "tokens", "bytes_per_token"}."""
    n_bytes = len(text.encode("utf-8"))
    n_tokens = len(tok.encode(text))
    return {"bytes": n_bytes, "tokens": n_tokens, "bytes_per_token": n_bytes / max(n_tokens, 1)}
