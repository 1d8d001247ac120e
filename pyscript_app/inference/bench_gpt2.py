"""`tabgpt bench --inference SIZE`: GPT-2 decoding speed on the GPU beside transformers' `generate`.

Random weights at one of OpenAI's shapes (`gpt2` = 124M; `gpt2-tiny` is a 2-layer, 64-wide model for
smoke runs), batch 1, a `prompt_tokens` random prompt, then `new_tokens` greedy tokens:
- ours: gpu/gpt2_model.Gpt2Decoder (one batched prefill, then one KV-cached step per token) with the
  choice made on the GPU (gpu/token_choice.py): per token one submission and one 8-byte read-back;
- the peer: transformers' GPT2LMHeadModel with the same weights, eager fp32 (TF32 off), KV cache,
  `generate(do_sample=False)` on the same GPU (CUDA) when torch has one, else on the CPU (then the
  ratio compares two devices, and the JSON says so);
- dtype: our weights in f32, or in f16 with f32 arithmetic (gpu/gpt2_weights.py); the peer stays fp32;
- the floor: the bytes of weights one decode step reads (in our dtype) (every matrix and bias, the tied head's
  V x C rows; one row of wpe) divided by the device memory bandwidth, measured in the same run by a
  torch device-to-device copy (none without CUDA).
Times: time to first token = the prefill and its choice, wall clock to the id on the host; ms/token =
the time from the first id to the last divided by new_tokens - 1. Each side runs once untimed first.
The two sides' greedy ids are compared: `ids_agree` counts the leading tokens that match.
"""

from __future__ import annotations

import time

import numpy as np

from ..reference import gpt2
from ..reference.gpt2_config import GPT2_SIZES, GPT2Config, gpt2_size

TINY = "gpt2-tiny"
SIZES = (*GPT2_SIZES, TINY)


def config_for(size: str) -> GPT2Config:
    if size == TINY:
        return GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=512)
    return gpt2_size(size)


def step_weight_bytes(cfg: GPT2Config, dtype: str = "f32") -> int:
    """Bytes of weights one decode step reads: all but wpe's other rows and wte's padding rows, with the
    products' weights and wte in `dtype` (gpu/gpt2_weights.py's layout), the rest in f32."""
    from ..gpu.gpt2_weights import gpu_nbytes

    unread = {"wpe.weight": (cfg.n_positions - 1) * cfg.n_embd * 4,
              "wte.weight": (cfg.padded_vocab - cfg.vocab_size) * cfg.n_embd * (2 if dtype == "f16" else 4)}
    return sum(gpu_nbytes(name, shape, dtype) - unread.get(name, 0) for name, shape in cfg.param_shapes())


def time_ours(ex, cfg: GPT2Config, params: dict, prompt: list[int], new_tokens: int, dtype: str = "f32") -> dict:
    from ..gpu.executor import run_sync
    from ..gpu.gpt2_model import Gpt2Decoder
    from ..gpu.gpt2_weights import Gpt2Weights
    from ..gpu.token_choice import Sampling, TokenChooser

    weights = Gpt2Weights.upload(ex, cfg, params, dtype)
    decoder, chooser, greedy = Gpt2Decoder(ex, weights), TokenChooser(ex), Sampling(temperature=0.0)
    run_sync(decoder.generate(prompt, min(new_tokens, 8), chooser, greedy))  # compiles every pipeline
    stamps: list[float] = []
    t0 = time.perf_counter()
    ids = run_sync(decoder.generate(prompt, new_tokens, chooser, greedy, on_token=lambda _: stamps.append(time.perf_counter())))
    decoder.release()
    weights.release(ex)
    return {"first_token_ms": 1e3 * (stamps[0] - t0),
            "ms_per_token": 1e3 * (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1), "ids": ids}


def _hf_model(torch, cfg: GPT2Config, params: dict, device: str):
    import transformers

    hf_cfg = transformers.GPT2Config(n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head,
                                     n_positions=cfg.n_positions, vocab_size=cfg.vocab_size,
                                     layer_norm_epsilon=cfg.layer_norm_epsilon,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = transformers.GPT2LMHeadModel(hf_cfg)
    state = {"transformer." + name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in params.items()}
    state["transformer.wte.weight"] = state["transformer.wte.weight"][: cfg.vocab_size]
    # Conv1D stores (in, out) as we do; lm_head is tied to wte, so it is the one key not given
    missing, unexpected = model.load_state_dict(state, strict=False)
    if set(missing) - {"lm_head.weight"} or unexpected:
        raise RuntimeError(f"GPT-2 state mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model = model.to(device).eval()
    model.generation_config.eos_token_id = None  # random weights: never stop early
    model.generation_config.pad_token_id = 0
    return model


def time_transformers(cfg: GPT2Config, params: dict, prompt: list[int], new_tokens: int) -> dict | None:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError:
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = _hf_model(torch, cfg, params, device)
    ids = torch.tensor([prompt], device=device)

    def run(n: int):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=True)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, out[0, len(prompt):].tolist()

    run(min(new_tokens, 8))  # warm-up
    first, _ = run(1)
    total, out_ids = run(new_tokens)
    return {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
            "transformers": transformers.__version__, "first_token_ms": 1e3 * first,
            "ms_per_token": 1e3 * (total - first) / max(1, new_tokens - 1), "ids": out_ids}


def memory_bandwidth_gb_s() -> float | None:
    """Device memory bandwidth by a 1 GiB device-to-device copy (read + write), best of 5; None without CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    src = torch.empty(1 << 28, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(6):
        torch.cuda.synchronize()
        t = time.perf_counter()
        dst.copy_(src)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * src.numel() * 4 / best / 1e9


def bench_inference(ex, size: str, new_tokens: int = 256, prompt_tokens: int = 32, seed: int = 0,
                    dtype: str = "f32") -> dict:
    cfg = config_for(size)
    if prompt_tokens + new_tokens > cfg.n_positions:
        raise ValueError(f"{prompt_tokens} + {new_tokens} tokens exceed the context ({cfg.n_positions})")
    params = gpt2.init_params(cfg, seed)
    prompt = np.random.default_rng(seed).integers(0, cfg.vocab_size, prompt_tokens).tolist()
    ours = time_ours(ex, cfg, params, prompt, new_tokens, dtype)
    peer = time_transformers(cfg, params, prompt, new_tokens)
    bandwidth = memory_bandwidth_gb_s()
    weight_bytes = step_weight_bytes(cfg, dtype)
    out = {"kind": "inference", "model": size, "dtype": dtype, "batch": 1, "prompt_tokens": prompt_tokens,
           "new_tokens": new_tokens, "params": cfg.real_param_count, "step_weight_bytes": weight_bytes,
           "ours": {k: v for k, v in ours.items() if k != "ids"}, "transformers": None,
           "memory_gb_s": bandwidth, "floor_ms_per_token": weight_bytes / bandwidth / 1e6 if bandwidth else None}
    if peer is not None:
        agree = 0
        for a, b in zip(ours["ids"], peer["ids"]):
            if a != b:
                break
            agree += 1
        out["transformers"] = {k: v for k, v in peer.items() if k != "ids"}
        out["ids_agree"] = agree
        out["ratio_ms_per_token"] = ours["ms_per_token"] / peer["ms_per_token"]
    if out["floor_ms_per_token"]:
        out["over_floor"] = ours["ms_per_token"] / out["floor_ms_per_token"]
    return out


def print_inference(res: dict) -> None:
    o, t = res["ours"], res["transformers"]
    print(f"\nGPT-2 {res['model']} ({res['params']:,} parameters, {res['dtype']}), batch 1, "
          f"{res['prompt_tokens']}-token prompt, {res['new_tokens']} new tokens (greedy)")
    print(f"{'':<14} {'first token ms':>15} {'ms/token':>10}")
    print(f"{'ours':<14} {o['first_token_ms']:15.2f} {o['ms_per_token']:10.3f}")
    if t:
        print(f"{'transformers':<14} {t['first_token_ms']:15.2f} {t['ms_per_token']:10.3f}   ({t['device']})")
        print(f"ours / transformers: {res['ratio_ms_per_token']:.2f}; greedy ids agree for the first "
              f"{res['ids_agree']} of {res['new_tokens']}")
    if res["floor_ms_per_token"]:
        print(f"floor: {res['step_weight_bytes'] / 1e6:.0f} MB of weights per token / {res['memory_gb_s']:.0f} GB/s = "
              f"{res['floor_ms_per_token']:.3f} ms/token; ours is {res['over_floor']:.1f}x the floor")
