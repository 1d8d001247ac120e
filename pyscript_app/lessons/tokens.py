"""The tokens lesson: characters vs bytes vs byte-level BPE, on the project's real tokenizer (data/bpe.py).

    tok = train_tokenizer(text, n_merges=200, progress=lambda done, total: ...)
    counts(tok, "hello there")     # {"characters", "bytes", "tokens", "bytes_per_token"}
    pieces(tok, tok.encode(text))  # [(id, bytes)] what each token stands for
    merge_rows(tok)                # [(rank, id, left bytes, right bytes, merged bytes)]
    with_first_merges(tok, k)      # the same tokenizer after only its first k merges

Training uses bpe.Tokenizer.train exactly as `tabgpt data` does (same segmentation, same
deterministic tie-breaking), only on a small text and with fewer merges. Because BPE is greedy,
the first k merges of a run are what a run asked for k merges would learn: `with_first_merges`
shows the tokenizer at any point of its training.
"""

from __future__ import annotations

from typing import Callable

from ..data.bpe import N_BYTES, N_SPECIALS, Tokenizer, normalize

MAX_MERGES = 2048  # the page's slider; the real presets use 1024 - 258 = 766


def vocab_size_for(n_merges: int) -> int:
    """Vocabulary of a tokenizer with n_merges merges: 256 bytes + merges + BOS/EOS."""
    return N_BYTES + n_merges + N_SPECIALS


def train_tokenizer(text: str, n_merges: int, progress: Callable[[int, int], None] | None = None) -> Tokenizer:
    """A BPE tokenizer learned from `text` (normalised as `tabgpt data` does) with up to n_merges merges."""
    if not (0 <= n_merges <= MAX_MERGES):
        raise ValueError(f"n_merges must be in [0, {MAX_MERGES}], got {n_merges}")
    return Tokenizer.train(normalize(text), vocab_size_for(n_merges), progress)


def with_first_merges(tok: Tokenizer, k: int) -> Tokenizer:
    """The tokenizer as it was after its first k merges (k is clamped to [0, n_merges])."""
    k = max(0, min(k, tok.n_merges))
    return Tokenizer(tok.merges[:k], vocab_size_for(k))


def pieces(tok: Tokenizer, ids: list[int]) -> list[tuple[int, bytes]]:
    """(id, the bytes it stands for) for each token."""
    return [(i, tok.token_bytes(i)) for i in ids]


def counts(tok: Tokenizer, text: str) -> dict[str, float]:
    """Lengths of `text` as characters, UTF-8 bytes and tokens, and the compression (bytes per token)."""
    n_bytes = len(text.encode("utf-8"))
    n_tokens = len(tok.encode(text))
    return {"characters": len(text), "bytes": n_bytes, "tokens": n_tokens,
            "bytes_per_token": n_bytes / n_tokens if n_tokens else 0.0}


def merge_rows(tok: Tokenizer, limit: int | None = None) -> list[tuple[int, int, bytes, bytes, bytes]]:
    """(rank, new id, left piece, right piece, merged piece) of the learned merges, earliest first."""
    rows = []
    for rank, (a, b) in enumerate(tok.merges[:limit]):
        left, right = tok.token_bytes(a), tok.token_bytes(b)
        rows.append((rank, N_BYTES + rank, left, right, left + right))
    return rows


def show_bytes(piece: bytes) -> str:
    """A token's bytes as readable text: UTF-8 where it decodes, <xx> hex for a partial character;
    a space shows as '·' and a newline as '↵' so whitespace tokens are visible."""
    out = []
    i = 0
    while i < len(piece):
        for n in (1, 2, 3, 4):  # the shortest prefix that is one whole UTF-8 character
            try:
                ch = piece[i:i + n].decode("utf-8")
            except UnicodeDecodeError:
                continue
            break
        else:
            out.append(f"<{piece[i]:02x}>")
            i += 1
            continue
        out.append({" ": "·", "\n": "↵", "\t": "⇥"}.get(ch, ch))
        i += n
    return "".join(out)
