"""`tabgpt sample` for an imported GPT-2: prompt -> n samples, with time to first token and ms/token.

The prompt is GPT-2-tokenized; an empty prompt starts from <|endoftext|>, as GPT-2 was trained to
begin a document. Each sample stops at <|endoftext|>, at --max-tokens or when the context is full.
"""

from __future__ import annotations

import sys

from ..errors import UserError
from ..inference.generate import Timing, generate
from ..inference.gpt2_checkpoint import from_decoded
from ..reference.token_choice import choose_token
from ..rng import sample_key, sample_uniform


def sample_gpt2(args, header: dict, arrays: dict) -> int:
    model = from_decoded(header, arrays)
    cfg, tok = model.cfg, model.tokenizer
    prompt = tok.encode(args.prompt) if args.prompt else [tok.eot_id]
    if len(prompt) >= cfg.n_positions:
        raise UserError(f"the prompt is {len(prompt)} tokens; the model's context is {cfg.n_positions}")
    if args.backend != "numpy":
        raise UserError("GPT-2 generation on the GPU is not available yet: use --backend numpy")
    stop = frozenset({tok.eot_id}) if tok.eot_id is not None else frozenset()
    key, drawn = sample_key(args.seed), [0]  # one stream of draws across the samples

    def choose(logits, step):
        u = sample_uniform(key, drawn[0])
        drawn[0] += 1
        return choose_token(logits, args.temperature, args.top_k, args.top_p, u)

    timings = []
    for _ in range(args.n):
        timing = Timing()
        ids = list(generate(cfg, model.params, prompt, args.max_tokens, choose, stop, timing))
        print(args.prompt + tok.decode(ids))
        timings.append(timing)
    first = sum(t.first_token_s for t in timings) / len(timings)
    steps = [s for t in timings for s in t.step_s]
    per_token = 1000.0 * sum(steps) / len(steps) if steps else float("nan")
    print(f"time to first token {1000.0 * first:.1f} ms, {per_token:.2f} ms/token "
          f"(numpy, {len(prompt)}-token prompt)", file=sys.stderr)
    return 0
