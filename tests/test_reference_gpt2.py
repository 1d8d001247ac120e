"""The reference GPT-2: whole-model gradient check, vocabulary padding, KV-cached decoding, the
Hugging Face loader, and the outside oracle (transformers' GPT2LMHeadModel and PyTorch autograd;
needs the `bench` extra's torch and the `test` extra's transformers: skipped locally, fails in CI).
"""

import json
import math
import os

import numpy as np
import pytest

from pyscript_app.config import ConfigError
from pyscript_app.reference import gpt2
from pyscript_app.reference.gpt2_config import GPT2Config, gpt2_size
from pyscript_app.reference.gpt2_hf import GPT2ImportError, config_from_hf, load_hf_folder
from pyscript_app.reference.gradcheck import numeric_grad, relative_error
from pyscript_app.reference.kvcache import KVCache
from _gpt2 import save_random_gpt2
from _require import module_available, require

# V = 37 padded to Vp = 48: rows 37..47 of wte are padding. Width 8 keeps the finite-difference
# check (2 forwards per parameter, ~2,300 parameters) near one second.
TINY = GPT2Config(n_layer=2, n_embd=8, n_head=2, n_positions=8, vocab_size=37, vocab_multiple=16)


def random_params(cfg, seed, dtype=np.float64):
    """Seeded values everywhere (biases and LayerNorm shifts non-zero, gains near 1), so every
    path carries gradient; padding rows of wte stay 0."""
    rng = np.random.default_rng(seed)
    params = gpt2.init_params(cfg, seed, dtype)
    for name, t in params.items():
        if name.endswith("weight") and ("ln_" in name):
            t[...] = 1.0 + 0.3 * rng.standard_normal(t.shape)
        elif name.endswith("bias"):
            t[...] = 0.3 * rng.standard_normal(t.shape)
        else:
            t[...] = rng.standard_normal(t.shape) * t.shape[-1] ** -0.5
    params["wte.weight"][cfg.vocab_size :] = 0
    return params


def random_batch(cfg, seed, B, T):
    tokens = np.random.default_rng(seed).integers(0, cfg.vocab_size, size=(B, T + 1))
    return tokens[:, :-1], tokens[:, 1:]  # idx, targets (B,T)


# --- config and layout --------------------------------------------------------------------------


def test_config_counts_gpt2_124m_and_pads_the_vocabulary():
    cfg = gpt2_size("gpt2")
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head) == (12, 768, 12)
    assert (cfg.n_positions, cfg.vocab_size) == (1024, 50257)
    assert cfg.real_param_count == cfg.param_count == 124_439_808  # transformers' count for "gpt2"
    padded = gpt2_size("gpt2", vocab_multiple=128)
    assert padded.padded_vocab == 50304 and padded.real_param_count == 124_439_808
    assert padded.param_count == 124_439_808 + (50304 - 50257) * 768
    assert GPT2Config.from_dict(json.loads(json.dumps(padded.to_dict()))) == padded
    with pytest.raises(ConfigError):
        GPT2Config(n_layer=1, n_embd=16, n_head=2, n_positions=2048)
    with pytest.raises(ConfigError):
        GPT2Config.from_dict({**TINY.to_dict(), "family": "tabgpt"})


def test_init_params_follow_gpt2s_rule():
    cfg = GPT2Config(n_layer=4, n_embd=64, n_head=4, n_positions=32, vocab_size=500, vocab_multiple=64)
    p = gpt2.init_params(cfg, seed=0)
    assert [(n, t.shape) for n, t in p.items()] == cfg.param_shapes()
    assert all(t.dtype == np.float32 for t in p.values())
    assert np.all(p["wte.weight"][500:] == 0) and abs(p["wte.weight"][:500].std() - 0.02) < 1e-3
    assert abs(p["h.0.mlp.c_proj.weight"].std() - 0.02 / math.sqrt(8)) < 1e-3
    assert np.all(p["h.1.ln_2.weight"] == 1) and np.all(p["h.1.attn.c_attn.bias"] == 0)


# --- gradient, padding --------------------------------------------------------------------------


def test_loss_and_grad_matches_finite_differences():
    params = random_params(TINY, seed=0)
    idx, targets = random_batch(TINY, seed=1, B=2, T=8)
    loss, grads = gpt2.loss_and_grad(TINY, params, idx, targets)
    assert list(grads) == [n for n, _ in TINY.param_shapes()]

    def f():
        return gpt2.forward(TINY, params, idx, targets)[0]

    for name, t in params.items():
        g = grads[name]
        assert g.dtype == np.float64 and g.shape == t.shape
        real = g[: TINY.vocab_size] if name == "wte.weight" else g
        assert np.abs(real).max() > 1e-6, f"{name} gets no gradient"
        assert relative_error(g, numeric_grad(f, t)) < 1e-6, name
    assert np.all(grads["wte.weight"][TINY.vocab_size :] == 0)


def test_padding_never_reaches_a_probability():
    params = random_params(TINY, seed=2)
    idx, targets = random_batch(TINY, seed=3, B=2, T=8)
    loss, grads = gpt2.loss_and_grad(TINY, params, idx, targets)
    garbage = {k: v.copy() for k, v in params.items()}
    garbage["wte.weight"][TINY.vocab_size :] = 1e4  # would dominate any softmax it entered
    logits = gpt2.logits(TINY, garbage, idx)
    assert logits.shape == (2, 8, TINY.vocab_size)  # V columns, not Vp
    assert np.array_equal(logits, gpt2.logits(TINY, params, idx))
    loss_g, grads_g = gpt2.loss_and_grad(TINY, garbage, idx, targets)
    assert loss_g == loss
    assert np.all(grads_g["wte.weight"][TINY.vocab_size :] == 0)
    assert np.array_equal(grads_g["wte.weight"], grads["wte.weight"])
    with pytest.raises(ValueError, match="padding"):
        gpt2.logits(TINY, params, np.array([[1, TINY.vocab_size]]))  # a padding row is no token


def test_float32_forward_stays_float32():
    params = random_params(TINY, seed=4, dtype=np.float32)
    idx, targets = random_batch(TINY, seed=5, B=1, T=8)
    loss, grads = gpt2.loss_and_grad(TINY, params, idx, targets)
    assert gpt2.logits(TINY, params, idx).dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())


# --- KV cache -----------------------------------------------------------------------------------


def test_kv_cached_decoding_equals_recomputation():
    params = random_params(TINY, seed=6)
    tokens = np.random.default_rng(7).integers(0, TINY.vocab_size, size=(2, TINY.n_positions))
    cache = KVCache(TINY, batch=2, dtype=np.float64)
    step = gpt2.prefill(TINY, params, cache, tokens[:, :3])  # (B,V) one batched pass
    assert cache.length == 3
    for pos in range(3, TINY.n_positions + 1):
        full = gpt2.logits(TINY, params, tokens[:, :pos])[:, -1]  # (B,V) recomputed from scratch
        assert relative_error(step, full) < 1e-12, pos
        if pos < TINY.n_positions:
            step = gpt2.decode_step(TINY, params, cache, tokens[:, pos], pos)
    # rewinding: decoding at an earlier position overwrites the cache from there
    again = gpt2.decode_step(TINY, params, cache, tokens[:, 2], 2)
    assert cache.length == 3
    assert relative_error(again, gpt2.logits(TINY, params, tokens[:, :3])[:, -1]) < 1e-12
    with pytest.raises(ValueError):
        gpt2.decode_step(TINY, params, cache, tokens[:, 0], 5)  # skips ahead


def test_generate_greedy_is_argmax_of_recomputed_logits():
    params = random_params(TINY, seed=8)
    seq = np.array([[3, 1, 4]])
    new = gpt2.generate_greedy(TINY, params, seq, 5)
    for n in range(5):
        expected = gpt2.logits(TINY, params, seq)[:, -1].argmax(axis=-1)
        assert new[0, n] == expected[0]
        seq = np.concatenate([seq, expected[:, None]], axis=1)
    with pytest.raises(ValueError):
        gpt2.generate_greedy(TINY, params, seq[:, :3], 7)  # 3 + 7 - 1 > 8 positions


# --- the Hugging Face loader (safetensors only) -------------------------------------------------


def _hf_config(cfg):
    return {
        "model_type": "gpt2", "activation_function": "gelu_new", "n_layer": cfg.n_layer,
        "n_embd": cfg.n_embd, "n_head": cfg.n_head, "n_positions": cfg.n_positions,
        "vocab_size": cfg.vocab_size, "layer_norm_epsilon": 1e-05, "n_inner": None,
        "tie_word_embeddings": True,
    }


def _write_hf_folder(folder, hf_config, state):
    from safetensors.numpy import save_file

    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(hf_config))
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder


def _tiny_hf_state(seed=9):
    cfg = GPT2Config(n_layer=2, n_embd=8, n_head=2, n_positions=8, vocab_size=37)  # unpadded, as saved
    params = random_params(cfg, seed, dtype=np.float32)
    return cfg, params, {"transformer." + k: v for k, v in params.items()}


@pytest.fixture
def _needs_safetensors():
    require(module_available("safetensors"), "safetensors is not installed (pip install -e .[test])")


def test_load_hf_folder_round_trips_and_pads(tmp_path, _needs_safetensors):
    cfg, params, state = _tiny_hf_state()
    state["lm_head.weight"] = state["transformer.wte.weight"]  # a tied head written out is accepted
    folder = _write_hf_folder(tmp_path / "m", _hf_config(cfg), state)
    got_cfg, got = load_hf_folder(folder, vocab_multiple=16)
    assert got_cfg == TINY
    assert got["wte.weight"].shape == (48, 8) and np.all(got["wte.weight"][37:] == 0)
    assert all(np.array_equal(got[k][: v.shape[0]], v) for k, v in params.items())


_C_ATTN = "transformer.h.0.attn.c_attn.weight"


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda c, s: s.pop("transformer.h.1.mlp.c_fc.bias"), "lacks"),
        (lambda c, s: s.update({_C_ATTN: s[_C_ATTN].T.copy()}), "shape"),  # stored the nn.Linear way
        (lambda c, s: s.update({"transformer.h.0.extra": np.zeros(3, np.float32)}), "unexpected"),
        (lambda c, s: s["transformer.ln_f.bias"].__setitem__(0, np.nan), "NaN"),
        (lambda c, s: s.update({"lm_head.weight": s["transformer.wte.weight"] + 1}), "untied"),
        (lambda c, s: c.update({"model_type": "llama"}), "not a GPT-2"),
        (lambda c, s: c.update({"activation_function": "relu"}), "activation_function"),
        (lambda c, s: c.update({"n_positions": 4096}), "n_positions"),
        (lambda c, s: c.pop("n_head"), "n_head"),
    ],
)
def test_load_hf_folder_rejects_bad_checkpoints(tmp_path, _needs_safetensors, spoil, message):
    cfg, _, state = _tiny_hf_state()
    hf_config = _hf_config(cfg)
    spoil(hf_config, state)
    folder = _write_hf_folder(tmp_path / "m", hf_config, state)
    with pytest.raises(GPT2ImportError, match=message) as err:
        load_hf_folder(folder)
    assert "\n" not in str(err.value) and isinstance(err.value, ConfigError)  # one line; CLI exit 2


def test_load_hf_folder_rejects_a_truncated_file(tmp_path, _needs_safetensors):
    cfg, _, state = _tiny_hf_state()
    folder = _write_hf_folder(tmp_path / "m", _hf_config(cfg), state)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(GPT2ImportError, match="unreadable"):
        load_hf_folder(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(GPT2ImportError, match="no model.safetensors"):
        load_hf_folder(folder)


# --- the outside oracle: transformers' GPT2LMHeadModel and PyTorch autograd ----------------------

HF_V, HF_POSITIONS = 50257, 128


@pytest.fixture(scope="module")
def hf_world(tmp_path_factory):
    """One random GPT-2 (2 layers, width 64, 4 heads, vocab 50,257, 128 positions) saved with
    save_pretrained, and transformers' own model loaded back from that folder (eager attention)."""
    for name in ("torch", "transformers", "safetensors"):
        require(module_available(name), f"{name} is not installed (pip install -e .[test,bench])")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local: never ask the Hub
    import torch

    folder = tmp_path_factory.mktemp("gpt2") / "hf"
    model = save_random_gpt2(folder, n_layer=2, n_embd=64, n_head=4, n_positions=HF_POSITIONS)
    cfg, params = load_hf_folder(folder, vocab_multiple=128)  # Vp = 50304: padding is exercised
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: on a shared 2-core machine threads cost ~10x (generate)
    yield {"torch": torch, "model": model, "folder": folder, "cfg": cfg, "params": params}
    torch.set_num_threads(threads)


def test_hf_folder_loads_with_hfs_names_and_config(hf_world):
    from safetensors.numpy import load_file

    cfg, params = hf_world["cfg"], hf_world["params"]
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head) == (2, 64, 4)
    assert (cfg.n_positions, cfg.vocab_size) == (HF_POSITIONS, HF_V)
    assert cfg.padded_vocab == 50304 and params["wte.weight"].shape == (50304, 64)
    state = load_file(str(hf_world["folder"] / "model.safetensors"))
    assert sorted("transformer." + n for n in params) == sorted(state)  # save_pretrained drops lm_head
    assert config_from_hf(hf_world["model"].config.to_dict(), 128) == cfg


def test_logits_equal_transformers(hf_world):
    torch, model = hf_world["torch"], hf_world["model"]
    cfg, params = hf_world["cfg"], hf_world["params"]
    idx = np.random.default_rng(10).integers(0, HF_V, size=(2, 48))
    ours = gpt2.logits(cfg, params, idx)  # (B,T,V) float32, as transformers computes
    with torch.no_grad():
        theirs = model(torch.from_numpy(idx)).logits.numpy()  # (B,T,V)
    assert ours.shape == theirs.shape == (2, 48, HF_V)
    assert relative_error(ours, theirs) < 1e-4


def test_gradients_equal_pytorch_autograd(hf_world):
    import copy

    torch, cfg = hf_world["torch"], hf_world["cfg"]
    model64 = copy.deepcopy(hf_world["model"]).double()  # float64 on both sides: a tight check
    params = gpt2.astype(hf_world["params"], np.float64)
    idx, targets = random_batch(cfg, seed=11, B=2, T=24)
    loss, grads = gpt2.loss_and_grad(cfg, params, idx, targets)

    logits = model64(torch.from_numpy(idx)).logits  # (B,T,V)
    t_targets = torch.from_numpy(targets).reshape(-1)  # (N,)
    t_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, HF_V), t_targets)  # mean over N
    t_loss.backward()
    assert abs(loss - t_loss.item()) < 1e-12 * abs(loss)
    named = dict(model64.named_parameters())  # the tied lm_head is wte itself: listed once
    assert sorted(n.removeprefix("transformer.") for n in named) == sorted(grads)
    for name, g in grads.items():
        theirs = named["transformer." + name].grad.numpy()
        assert relative_error(g[: theirs.shape[0]], theirs) < 1e-9, name
    assert np.all(grads["wte.weight"][HF_V:] == 0)


def test_kv_cached_decoding_equals_recomputation_on_the_hf_weights(hf_world):
    cfg, params = hf_world["cfg"], hf_world["params"]
    tokens = np.random.default_rng(12).integers(0, HF_V, size=(1, 20))
    cache = KVCache(cfg, batch=1)
    step = gpt2.prefill(cfg, params, cache, tokens[:, :12])
    for pos in range(12, 20):
        full = gpt2.logits(cfg, params, tokens[:, :pos])[:, -1]
        assert relative_error(step, full) < 1e-5, pos  # float32: summation order differs
        step = gpt2.decode_step(cfg, params, cache, tokens[:, pos], pos)


def test_greedy_generation_matches_transformers_generate(hf_world):
    torch, model = hf_world["torch"], hf_world["model"]
    cfg, params = hf_world["cfg"], hf_world["params"]
    prompt = np.random.default_rng(13).integers(0, HF_V, size=(1, 8))
    ours = gpt2.generate_greedy(cfg, params, prompt, 64)  # (1,64), float32
    with torch.no_grad():
        out = model.generate(
            torch.from_numpy(prompt), attention_mask=torch.ones(1, 8, dtype=torch.long),
            max_new_tokens=64, do_sample=False,
        )
    theirs = out[:, 8:].numpy()
    assert theirs.shape == (1, 64) and len(set(theirs[0].tolist())) > 10  # not one token repeated
    assert ours.tolist() == theirs.tolist()
