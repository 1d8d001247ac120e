"""inference/page_generate.py: the inference page's generation loops. With fakes: the token budget, the
end-of-text stop, Stop, the timings. On the native GPU: a small random GPT-2 whose weights went through
the page's chunk plan (an f16 tabgpt checkpoint, widened per chunk) gives Gpt2Decoder.generate's ids."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest


from _gpu import gpu  # noqa: F401
from pyscript_app.gpu.token_choice import Sampling
from pyscript_app.inference.page_generate import (Generation, done_text, generate_gpt2, gpt2_budget,
                                                  timing_text)
from pyscript_app.reference.gpt2_config import GPT2Config


class FakeDecoder:
    """Gpt2Decoder.generate's contract: ids in order to on_token until it returns true or the budget ends."""

    def __init__(self, n_positions=16):
        self.cfg = GPT2Config(n_layer=1, n_embd=4, n_head=1, n_positions=n_positions, vocab_size=10)
        self.budgets = []

    async def generate(self, prompt, max_new_tokens, chooser, sampling, on_token):
        self.budgets.append(max_new_tokens)
        out = []
        for token in chooser.ids[:max_new_tokens]:
            out.append(token)
            if on_token(token):
                break
        return out


class FakeChooser:
    def __init__(self, ids):
        self.ids = list(ids)


def fake_clock(step_s=0.01):
    t = [0.0]

    def clock():
        t[0] += step_s
        return t[0]
    return clock


def gen(ids, prompt=(1, 2), n=5, **kw):
    dec = FakeDecoder(kw.pop("n_positions", 16))
    g = asyncio.run(generate_gpt2(dec, FakeChooser(ids), list(prompt), n, Sampling(temperature=0.0),
                                  clock=fake_clock(), **kw))
    return g, dec


def test_tokens_arrive_one_by_one_with_timings():
    seen = []
    g, dec = gen([3, 4, 5, 6, 7], on_token=seen.append)
    assert g.ids == seen == [3, 4, 5, 6, 7] and g.reason == "max_tokens" and dec.budgets == [5]
    assert g.first_token_ms == pytest.approx(10.0) and g.ms_per_token == pytest.approx(10.0)
    assert timing_text(g) == ("10 ms", "10.0 ms/token") and "5 tokens" in done_text(g)


def test_end_of_text_and_stop_end_early():
    g, _ = gen([3, 9, 5], stop_ids=frozenset({9}))
    assert g.ids == [3] and g.reason == "end_of_text"
    g, dec = gen([3, 4, 5, 6, 7], should_stop=lambda: True)
    assert g.ids == [3] and g.reason == "stopped" and dec.budgets == [5]


def test_the_context_bounds_the_budget():
    assert gpt2_budget(16, 14, 64) == 3 and gpt2_budget(16, 2, 5) == 5
    g, dec = gen([1] * 10, prompt=[1] * 14)
    assert len(g.ids) == 3 and g.reason == "context" and dec.budgets == [3]
    with pytest.raises(ValueError, match="context"):
        gen([1], prompt=[1] * 17)
    assert timing_text(Generation()) == ("–", "–")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_weights_through_the_chunk_plan_generate_the_decoders_ids(gpu, dtype):
    """The page's upload (browser/inference_page.load_gpt2) in numpy: each WeightWriter chunk of rows read from
    the file at page_model.file_range, widened to f32 (weight_upload.js), written where chunk_target says,
    then packed; 256-byte chunks, so every tensor takes several. The decoder then generates Gpt2Weights.upload's
    ids."""
    from pyscript_app.gpu.executor import run_sync
    from pyscript_app.gpu.gpt2_model import Gpt2Decoder
    from pyscript_app.gpu.gpt2_weights import Gpt2Weights, WeightWriter
    from pyscript_app.gpu.token_choice import TokenChooser
    from pyscript_app.inference.page_model import file_range, inspect
    from pyscript_app.train import checkpoint
    from test_inference_page_model import MemFile

    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=32, vocab_size=500)
    flat = (0.3 * np.random.default_rng(5).standard_normal(cfg.param_count)).astype(np.float16)
    header = {"family": "gpt2", "model_config": cfg.to_dict(), "tokenizer": {"vocab_json": "", "merges_txt": ""}}
    blob = checkpoint.encode(header, {"params": flat.tobytes()}, {"params": "f16"})
    src = asyncio.run(inspect([MemFile("c.tgpt", blob)]))
    writer, shapes = WeightWriter(gpu, cfg, dtype, chunk_bytes=256), dict(cfg.param_shapes())
    for t in src.tensors:
        per_row = t.count // shapes[t.name][0] if len(shapes[t.name]) > 1 else t.count
        for row0, rows in writer.chunks(t.name):
            buf, offset = writer.chunk_target(t.name, row0)
            start, count = file_range(t, per_row, row0, rows)
            gpu.write(buf, np.frombuffer(blob[start:start + 2 * count], "<f2").astype(np.float32).tobytes(), offset)
            writer.chunk_written(t.name, row0, rows)
    page = Gpt2Decoder(gpu, writer.finish())
    offsets = cfg.param_offsets()
    whole = {name: flat[off:off + int(np.prod(shape))].astype(np.float32).reshape(shape)
             for name, (off, shape) in offsets.items()}
    ref = Gpt2Decoder(gpu, Gpt2Weights.upload(gpu, cfg, whole, dtype))
    for sampling in (Sampling(temperature=0.0), Sampling(temperature=0.9, top_k=50, top_p=0.95, seed=3)):
        ours = run_sync(generate_gpt2(page, TokenChooser(gpu), [1, 2, 3], 20, sampling))
        theirs = run_sync(ref.generate([1, 2, 3], 20, TokenChooser(gpu), sampling))
        assert ours.ids == theirs and len(set(theirs)) >= 2


def test_our_familys_generation_is_the_samplers_and_stops():
    """generate_own (a playground checkpoint's model) yields train/sampler.generate_ids' ids for the seed."""
    import random

    from pyscript_app.inference.page_generate import generate_own
    from pyscript_app.train.sampler import generate_ids
    from test_train_sampler import _backend

    mc, be = _backend()
    context = [mc.vocab_size - 2, 5, 17]

    async def sampler_ids():
        return [t async for t in generate_ids(be, context, max_tokens=20, temperature=0.8, top_k=0,
                                             stop_ids=set(), rand=random.Random(4))]

    want = asyncio.run(sampler_ids())
    got = asyncio.run(generate_own(be, context, 20, 0.8, 0, 4, stop_ids=frozenset(), clock=fake_clock()))
    assert got.ids == want and got.reason == "max_tokens" and got.ms_per_token == pytest.approx(10.0)
    stopped = asyncio.run(generate_own(be, context, 20, 0.8, 0, 4, stop_ids=frozenset(), should_stop=lambda: True))
    assert stopped.ids == want[:1] and stopped.reason == "stopped"
