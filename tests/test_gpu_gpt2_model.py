"""gpu/gpt2_model.py: GPT-2's batched prefill and KV-cached decode on the GPU against reference/gpt2.py
(float64), in a small config with GPT-2's real vocabulary (2 layers, width 64, 2 heads, V = 50,257
padded to 50,304, 128 positions).

Both weight types: f32, and f16 storage with f32 arithmetic, whose oracle is the reference on the same weights
rounded to f16 (gpu/gpt2_weights.py narrows the products' weights and wte only).

Tolerances: logits relative error (max |a - b| / max |b|) < 1e-4, the issue's oracle; greedy ids equal."""

from array import array

import numpy as np
import pytest

from _gpu import gpu  # noqa: F401
from pyscript_app.gpu.executor import run_sync
from pyscript_app.gpu.gpt2_model import Gpt2Decoder
from pyscript_app.gpu.gpt2_weights import Gpt2Weights, stored_narrow
from pyscript_app.gpu.matmul_rules import MATVEC_GPU_OVERRIDES
from pyscript_app.reference import gpt2
from pyscript_app.reference.gpt2_config import GPT2Config
from pyscript_app.reference.gradcheck import relative_error
from pyscript_app.reference.kvcache import KVCache

pytestmark = pytest.mark.gpu
CFG = GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=128, vocab_size=50257, vocab_multiple=64)


@pytest.fixture(scope="module", params=["f32", "f16"])
def world(gpu, request):
    """tests/_gpt2.save_random_gpt2's recipe in numpy: GPT-2's initialisation at 5x the scale, biases and
    LayerNorms random, positions 5x stronger (else a tied head echoes its input and greedy decoding
    repeats one token); the padding rows of wte NaN (never read). The weights are uploaded once per type."""
    dtype = request.param
    rng = np.random.default_rng(0)
    params = gpt2.init_params(CFG, seed=0)
    for name, t in params.items():
        if ".ln_" in name or name.startswith("ln_f."):
            t[...] = (1.0 if name.endswith("weight") else 0.0) + 0.2 * rng.standard_normal(t.shape)
        elif name.endswith("bias"):
            t[...] = 0.2 * rng.standard_normal(t.shape)
        else:
            t *= 5.0
    params["wpe.weight"] *= 5.0
    if dtype == "f16":  # what the GPU stores: the oracle computes with the same values
        params = {k: v.astype(np.float16).astype(np.float32) if stored_narrow(k) else v for k, v in params.items()}
    uploaded = dict(params)
    uploaded["wte.weight"] = params["wte.weight"].copy()
    uploaded["wte.weight"][CFG.vocab_size:] = np.nan
    weights = Gpt2Weights.upload(gpu, CFG, uploaded, dtype)
    decoder = Gpt2Decoder(gpu, weights)
    yield params, gpt2.astype(params, np.float64), decoder
    decoder.release()
    weights.release(gpu)


def test_prefill_and_decode_logits_match_reference(gpu, world):
    _, p64, dec = world
    ids = np.random.default_rng(1).integers(0, CFG.vocab_size, size=24)
    T = 20
    got = np.asarray(run_sync(dec.logits(ids[:T].tolist()))).reshape(T, CFG.vocab_size)  # fills the caches
    ref = gpt2.logits(CFG, p64, ids[None, :T])[0]
    assert relative_error(got, ref) < 1e-4
    last = np.asarray(run_sync(dec.prefill(ids[:T].tolist())))  # the last row only
    assert relative_error(last, ref[-1]) < 1e-4
    cache = KVCache(CFG, batch=1, dtype=np.float64)
    gpt2.prefill(CFG, p64, cache, ids[None, :T])
    for pos in range(T, len(ids)):
        submits, reads = gpu.stats["submits"], gpu.stats["reads"]
        step = np.asarray(run_sync(dec.step(int(ids[pos]), pos)))
        assert (gpu.stats["submits"] - submits, gpu.stats["reads"] - reads) == (1, 1)  # one submission, one read
        assert relative_error(step, gpt2.decode_step(CFG, p64, cache, ids[pos:pos + 1], pos)[0]) < 1e-4, pos


def test_gpu_adapter_choices_match_reference(gpu, world, monkeypatch):
    """On a GPU adapter (forced here on whatever adapter runs the tests) the products and the head share each
    row of weights between several invocations (matmul_rules.MATVEC_GPU_OVERRIDES), in the weights' type."""
    _, p64, dec = world
    monkeypatch.setitem(gpu.adapter_info, "adapter_type", "DiscreteGPU")
    dec._step_plans.clear()  # steps recorded under the CPU adapter's choices
    chosen = []
    dispatch = gpu.dispatch
    monkeypatch.setattr(gpu, "dispatch", lambda k, b, p, **kw: (chosen.append((k, kw.get("overrides"))),
                                                                 dispatch(k, b, p, **kw))[1])
    ids = np.random.default_rng(3).integers(0, CFG.vocab_size, size=13)
    got = np.asarray(run_sync(dec.prefill(ids[:12].tolist())))
    cache = KVCache(CFG, batch=1, dtype=np.float64)
    assert relative_error(got, gpt2.prefill(CFG, p64, cache, ids[None, :12])[0]) < 1e-4
    step = np.asarray(run_sync(dec.step(int(ids[12]), 12)))
    assert relative_error(step, gpt2.decode_step(CFG, p64, cache, ids[12:], 12)[0]) < 1e-4
    dec._step_plans.clear()
    suffix = dec.w.kernel_suffix
    assert {k for k, o in chosen if k.startswith("matvec_rows") and o == MATVEC_GPU_OVERRIDES} == {
        k + suffix for k in ("matvec_rows", "matvec_rows_ln_bias", "matvec_rows_ln_bias_gelu",
                             "matvec_rows_bias_residual")}
    # ln_1 and ln_2 are folded into the products after them; ln_f alone goes before the head (the prefill's, the step's)
    assert [k for k, _ in chosen].count("layernorm_forward") == 2
    assert ("embedding_forward" + suffix) in {k for k, _ in chosen}


def test_a_token_chosen_on_the_gpu_feeds_the_next_step(gpu, world):
    """record_step takes a buffer whose first u32 is the token (gpu/token_choice.py's output)."""
    _, _, dec = world
    ids = [5, 50256, 17]
    run_sync(dec.prefill(ids))
    by_id = np.asarray(run_sync(dec.step(42, 3)))
    chosen = gpu.upload(array("I", [42, 0]).tobytes())  # [id, probability bits]
    by_buffer = np.asarray(run_sync(dec.step(chosen, 3)))
    assert np.array_equal(by_id.view(np.uint32), by_buffer.view(np.uint32))
    with pytest.raises(ValueError):
        dec.record_step(CFG.vocab_size, 4)  # a padding row is not a token
    with pytest.raises(ValueError):
        dec.record_prefill([])


def test_greedy_generation_matches_reference(world):
    _, p64, dec = world
    prompt = np.random.default_rng(2).integers(0, CFG.vocab_size, size=(1, 8))
    ours = run_sync(dec.generate_greedy(prompt[0].tolist(), 64))
    ref = gpt2.generate_greedy(CFG, p64, prompt, 64)[0].tolist()
    assert len(set(ref)) > 10  # not one token repeated
    assert ours == ref


def test_generation_with_the_choice_on_the_gpu(gpu, world):
    """gpu/token_choice.py's greedy choice feeding the next step from its buffer: the reference's greedy
    ids, one 8-byte read per token; after the first, two submissions per token (the replayed step, then the
    choice with the read's copy), one for a step being recorded."""
    from pyscript_app.gpu.token_choice import Sampling, TokenChooser

    _, p64, dec = world
    prompt = np.random.default_rng(4).integers(0, CFG.vocab_size, size=(1, 5))
    chooser, seen = TokenChooser(gpu), []
    run_sync(dec.prefill(prompt[0].tolist()))  # pipelines compiled: the counts below are the steady state
    submits, reads = gpu.stats["submits"], gpu.stats["reads"]
    ours = run_sync(dec.generate(prompt[0].tolist(), 12, chooser, Sampling(temperature=0.0), seen.append))
    assert (gpu.stats["submits"] - submits, gpu.stats["reads"] - reads) == (1 + 1 + 2 * 10, 12)
    assert ours == seen == gpt2.generate_greedy(CFG, p64, prompt, 12)[0].tolist()


def test_reading_ids_behind_the_gpu_changes_no_id_and_a_stop_ends_there(gpu, world):
    """generate's lookahead (steps submitted ahead of the id read back) gives the same ids as reading each
    at once; a true on_token ends the generation at that id, and the next generation is unharmed."""
    from pyscript_app.gpu.token_choice import Sampling, TokenChooser

    _, _, dec = world
    prompt, chooser = [3, 1, 4, 1, 5], TokenChooser(gpu)
    sampling = Sampling(temperature=0.9, top_k=40, top_p=0.9, seed=2)
    at_once = run_sync(dec.generate(prompt, 16, chooser, sampling, lookahead=0))
    behind = run_sync(dec.generate(prompt, 16, chooser, sampling, lookahead=6))
    assert behind == at_once and len(set(at_once)) > 3
    seen = []
    stopped = run_sync(dec.generate(prompt, 16, chooser, sampling, on_token=lambda t: seen.append(t) or len(seen) == 3))
    assert stopped == seen == at_once[:3]
    assert run_sync(dec.generate(prompt, 16, chooser, sampling)) == at_once
