import asyncio
import random

import numpy as np

from _world import tiny_train_config, tiny_world
from pyscript_app.train.numpy_backend import NumpyBackend
from pyscript_app.reference import model
from pyscript_app.train.sampler import choose, generate_ids, sample_texts, top_candidates


def test_choose_greedy_topk_and_temperature():
    logits = [0.0, 3.0, 1.0, 2.9]
    assert choose(logits, 0.0, 0, random.Random(0)) == 1
    r = random.Random(0)
    assert {choose(logits, 1.0, 2, r) for _ in range(200)} == {1, 3}
    r = random.Random(0)
    assert len({choose(logits, 5.0, 0, r) for _ in range(400)}) == 4
    cands = top_candidates(logits, 1.0, k=2)
    assert [i for i, _ in cands] == [1, 3] and 0 < cands[1][1] < cands[0][1] < 1


def _backend(seed=0):
    cfg = tiny_train_config()
    be = NumpyBackend(cfg.model_cfg(), cfg)
    asyncio.run(be.init(1))
    be.params += np.random.default_rng(seed).normal(0, 0.5, be.params.size).astype(np.float32)
    return cfg.model_cfg(), be


def test_kv_cache_greedy_equals_full_recompute_past_the_context():
    mc, be = _backend()
    context = [mc.vocab_size - 2, 5, 17]

    async def gen():
        return [t async for t in generate_ids(be, context, max_tokens=20, temperature=0.0, top_k=0,
                                                 stop_ids=set(), rand=random.Random(0))]
    got = asyncio.run(gen())
    # reference: recompute logits over the whole window for every new token, sliding as documented
    # (the window holds at most T tokens; past that it restarts from the last T - 1)
    T = mc.block_size
    win, want = list(context[-T:]), []
    for _ in range(20):
        nxt = int(np.argmax(model.logits(mc, be.params, np.array([win]))[0, -1]))
        want.append(nxt)
        win.append(nxt)
        if len(win) > T:
            win = win[-(T - 1):]
    assert len(got) == 20 > T
    assert got == want


def test_sample_texts_stop_at_bos_and_keep_prompt():
    tok, _, _ = tiny_world()
    mc, be = _backend()
    texts = asyncio.run(sample_texts(be, tok, prompt="ka", n=3, max_tokens=10, temperature=1.0, seed=1))
    assert len(texts) == 3 and all(t.startswith("ka") for t in texts)
    again = asyncio.run(sample_texts(be, tok, prompt="ka", n=3, max_tokens=10, temperature=1.0, seed=1))
    assert texts == again
