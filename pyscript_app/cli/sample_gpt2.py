"""`tabgpt sample` for an imported GPT-2: prompt -> n samples, with time to first token and ms/token.

The prompt is GPT-2-tokenized; an empty prompt starts from <|endoftext|>, as GPT-2 was trained to
begin a document. Each sample stops at <|endoftext|>, at --max-tokens or when the context is full.
Sample n draws with the key of seed + n, token i with draw i (rng.sample_uniform), on both backends:
`--backend numpy` (the reference) and `--backend gpu` (gpu/gpt2_model.py, the choice made on the GPU)
give the same samples up to float rounding at a choice's boundary.
"""

from __future__ import annotations

import sys
import time

from ..errors import UserError
from ..inference.generate import Timing, generate
from ..inference.gpt2_checkpoint import F16_MAX, f16_overflow, from_decoded
from ..reference.token_choice import choose_token
from ..rng import sample_key, sample_uniform


def _numpy_sample(model, prompt: list[int], max_new: int, args, n: int, stop: frozenset[int]) -> tuple[list[int], Timing]:
    key = sample_key(args.seed + n)

    def choose(logits, step):
        return choose_token(logits, args.temperature, args.top_k, args.top_p, sample_uniform(key, step))

    timing = Timing()
    return list(generate(model.cfg, model.params, prompt, max_new, choose, stop, timing)), timing


class _GpuSampler:
    """The model's weights on the GPU once; one generation per sample."""

    def __init__(self, model, engine: str, dtype: str) -> None:
        from ..gpu.gpt2_model import Gpt2Decoder
        from ..gpu.gpt2_weights import Gpt2Weights, WeightDtypeError, choose_weight_dtype
        from ..gpu.native import open_device
        from ..gpu.token_choice import TokenChooser

        self.ex = open_device(engine)
        try:
            self.dtype = choose_weight_dtype(dtype, self.ex.features)
        except WeightDtypeError as e:
            raise UserError(str(e)) from None
        if self.dtype == "f16" and (bad := f16_overflow(model.params)):
            if dtype == "f16":
                raise UserError(f"{bad}: weights beyond f16's range ({F16_MAX:g}); use --dtype f32")
            self.dtype = "f32"  # auto: f16 only where every weight fits
        self.decoder = Gpt2Decoder(self.ex, Gpt2Weights.upload(self.ex, model.cfg, model.params, self.dtype))
        self.chooser = TokenChooser(self.ex)

    def sample(self, prompt: list[int], max_new: int, args, n: int, stop: frozenset[int]) -> tuple[list[int], Timing]:
        from ..gpu.executor import run_sync
        from ..gpu.token_choice import Sampling

        sampling = Sampling(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed + n)
        stamps: list[float] = []
        t0 = time.perf_counter()
        ids = run_sync(self.decoder.generate(prompt, max_new, self.chooser, sampling,
                                             on_token=lambda _: stamps.append(time.perf_counter())))
        timing = Timing(first_token_s=stamps[0] - t0, step_s=[b - a for a, b in zip(stamps, stamps[1:])])
        for i, token in enumerate(ids):  # the GPU runs the whole budget; the sample ends at the stop id
            if token in stop:
                return ids[:i], timing
        return ids, timing


def sample_gpt2(args, header: dict, arrays: dict) -> int:
    model = from_decoded(header, arrays)
    cfg, tok = model.cfg, model.tokenizer
    prompt = tok.encode(args.prompt) if args.prompt else [tok.eot_id]
    if len(prompt) >= cfg.n_positions:
        raise UserError(f"the prompt is {len(prompt)} tokens; the model's context is {cfg.n_positions}")
    max_new = min(args.max_tokens, cfg.n_positions - len(prompt) + 1)  # the last new token is never fed back
    stop = frozenset({tok.eot_id}) if tok.eot_id is not None else frozenset()
    if args.backend == "numpy" and args.dtype == "f16":
        raise UserError("--dtype f16 stores the weights on the GPU: add --backend gpu")
    sampler = _GpuSampler(model, args.gpu, args.dtype) if args.backend == "gpu" else None
    timings = []
    for n in range(args.n):
        if sampler is None:
            ids, timing = _numpy_sample(model, prompt, max_new, args, n, stop)
        else:
            ids, timing = sampler.sample(prompt, max_new, args, n, stop)
        print(args.prompt + tok.decode(ids))
        timings.append(timing)
    first = sum(t.first_token_s for t in timings) / len(timings)
    steps = [s for t in timings for s in t.step_s]
    per_token = 1000.0 * sum(steps) / len(steps) if steps else float("nan")
    where = "numpy" if sampler is None else f"GPU, {sampler.ex.engine}, {sampler.dtype} weights"
    print(f"time to first token {1000.0 * first:.1f} ms, {per_token:.2f} ms/token ({where}, "
          f"{len(prompt)}-token prompt)", file=sys.stderr)
    return 0
