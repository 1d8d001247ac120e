"""`tabgpt sample`: generate from a checkpoint, ours (trained) or an imported GPT-2."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from ..config import TrainConfig
from ..errors import UserError
from ..train import checkpoint
from ..train.backend_choice import make_backend
from ..train.run_state import read_checkpoint
from ..train.sampler import sample_texts


def load_for_sampling(blob: bytes, backend_name: str, gpu: str):
    """(tokenizer, model config, train config, arrays, header) of one of our checkpoints."""
    run = read_checkpoint(blob)
    header, arrays, mc, tok = run.header, run.arrays, run.model_cfg, run.tokenizer
    cfg = replace(TrainConfig(), model_config=mc.to_dict(), vocab_size=mc.vocab_size, backend=backend_name, gpu=gpu)
    return tok, mc, cfg, arrays, header


async def _sample(args, blob: bytes) -> int:
    if args.top_p < 1.0:
        raise UserError("--top-p applies to imported GPT-2 checkpoints; our checkpoints sample with --top-k")
    tok, mc, cfg, arrays, header = load_for_sampling(blob, args.backend, args.gpu)
    backend = make_backend(mc, cfg)
    await backend.load(arrays["params"], None, None, 0)
    texts = await sample_texts(backend, tok, prompt=args.prompt, n=args.n, max_tokens=args.max_tokens,
                               temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    for t in texts:
        print(t)
    return 0


def cmd_sample(args) -> int:
    blob = checkpoint.resolve(args.checkpoint).read_bytes()  # read once: an imported GPT-2 is large
    header, arrays = checkpoint.decode(blob)
    if header.get("family") == "gpt2":
        from .sample_gpt2 import sample_gpt2
        return sample_gpt2(args, header, arrays)
    if args.dtype != "auto":
        raise UserError("--dtype chooses how a GPT-2's weights are stored on the GPU; this is a tabgpt model")
    return asyncio.run(_sample(args, blob))
