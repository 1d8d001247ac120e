"""`tabgpt import PATH [--dtype f32|f16] --out DIR`: a Hugging Face GPT-2 folder -> a tabgpt checkpoint."""

from __future__ import annotations

from ..inference.gpt2_checkpoint import convert, write


def cmd_import(args) -> int:
    header, data, cfg = convert(args.path, args.dtype)
    out = write(args.out, header, data, args.dtype)
    print(f"imported GPT-2: {cfg.n_layer} layers, width {cfg.n_embd}, {cfg.n_head} heads, context "
          f"{cfg.n_positions}, vocabulary {cfg.vocab_size}; {cfg.real_param_count:,} parameters in "
          f"{args.dtype} -> {out}")
    return 0
