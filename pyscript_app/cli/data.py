"""`tabgpt data`: prepare a dataset's tokenizer and token files, print compression stats."""

from __future__ import annotations

from pathlib import Path

from ..data.prepare import prepare_dataset


def cmd_data(args) -> int:
    s = prepare_dataset(args.dataset, args.data_dir, vocab_size=args.vocab)
    print(f"dataset      {s['dataset']}  ({s['source']}, {s['kind']})")
    print(f"tokenizer    vocab {s['vocab_size']}, {s['n_merges']} merges, sha256 {s['tokenizer_sha256'][:12]}"
          f"  ({s['seconds']:.1f} s)")
    for split in ("train", "val"):
        d = s[split]
        print(f"{split:<12} {d['bytes']:>10,} bytes  {d['tokens']:>9,} tokens  {d['bytes_per_token']:.3f} bytes/token")
    print(f"wrote        {', '.join(Path(p).name for p in s['files'].values())} in {Path(s['files']['train']).parent}")
    return 0
