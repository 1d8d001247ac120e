"""Seconds to train the BPE tokenizer on shakespeare's train split and to encode the whole text.

    python3 benchmarks/bench_bpe.py [--dataset shakespeare] [--vocab 1024] [--data-dir DIR]

Targets: 766 merges in < 10 s, encoding 1 MB in < 5 s (CPython, one core). The text comes from
the registry as `tabgpt data` finds it (TABGPT_DATA_MIRROR, the cache, or a download). Encoding
starts from a fresh tokenizer (empty chunk cache), so the figure includes every cache miss.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyscript_app.data.bpe import Tokenizer, count_chunks  # noqa: E402
from pyscript_app.data.datasets import load_text  # noqa: E402
from pyscript_app.data.splits import split_documents  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="shakespeare")
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()

    text, info = load_text(args.dataset, args.data_dir)
    train_docs, val_docs = split_documents(text, info.kind)
    print(f"{info.name}: {info.n_bytes:,} bytes from {info.source}; python {platform.python_version()}")

    t0 = time.perf_counter()
    n_chunks = len(count_chunks(train_docs))
    t1 = time.perf_counter()
    tok = Tokenizer.train(train_docs, args.vocab)
    t2 = time.perf_counter()
    print(f"train: {tok.n_merges} merges in {t2 - t1:.2f} s "
          f"({n_chunks:,} unique chunks, counted in {t1 - t0:.2f} s)")

    fresh = Tokenizer.from_json(tok.to_json())  # empty encode cache
    t3 = time.perf_counter()
    ids = fresh.encode(text)
    t4 = time.perf_counter()
    mb = len(text.encode("utf-8")) / 1e6
    print(f"encode: {mb:.2f} MB in {t4 - t3:.2f} s ({mb / (t4 - t3):.2f} MB/s), {len(ids):,} tokens")

    for split, docs in (("train", train_docs), ("val", val_docs)):
        split_ids = tok.encode_docs(docs)
        n_bytes = tok.bytes_of_tokens(split_ids)
        per_token = n_bytes / len(split_ids)
        print(f"{split}: {n_bytes:,} bytes, {len(split_ids):,} tokens, {per_token:.3f} bytes/token")
    print(f"whole text: {len(text.encode('utf-8')) / len(ids):.3f} bytes/token")

    train_ids = tok.encode_docs(train_docs)
    final = {i for i in train_ids if i >= 256}
    applied = tok.applied_merges(train_ids)
    print(f"merges applied encoding train: {len(applied)}/{tok.n_merges}; seen as final tokens: {len(final)}")


if __name__ == "__main__":
    main()
