"""Question: how should GPT-2's tied head be computed when decoding one token (logits (1,V) = x (1,C) @
wte[:V].T), and what does a whole KV-cached decode step of the 124M shape cost with gpu/gpt2_model.py?

1. The head alone at V = 50,257 for C = 64 (the tests' config) and C = 768 (124M): matvec.wgsl's
   matvec_transposed at several LANES (invocations sharing a row of wte) and workgroup sizes, against
   matmul.wgsl's matmul_backward_dx with the tiles the forward rules give (registry.tied_head_entry):
   the median ms per dispatch of `reps` dispatches in one submission, after an untimed run of as many.
2. gpu/gpt2_model.Gpt2Decoder on the 124M shape with GPT-2's random initialisation (f32): a 32-token
   prefill, then 64 decode steps, each recorded, submitted and its V logits read back (what sampling
   with a host-side choice does): the median ms per step, and the prefill's ms; the prefill's logits
   against the numpy reference (relative error). --smoke: the tests' small config instead.

    python3 benchmarks/probes/decode_probe.py dawn OUT.json          # on the GPU machine
    python3 benchmarks/probes/decode_probe.py wgpu-native OUT.json --smoke
"""
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pyscript_app.gpu.executor import run_sync  # noqa: E402
from pyscript_app.gpu.gpt2_model import Gpt2Decoder, Gpt2Weights  # noqa: E402
from pyscript_app.gpu.matmul_rules import matmul_forward_overrides  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402
from pyscript_app.gpu.registry import tied_head_entry  # noqa: E402
from pyscript_app.reference import gpt2  # noqa: E402
from pyscript_app.reference.gpt2_config import GPT2Config, gpt2_size  # noqa: E402
from pyscript_app.reference.gradcheck import relative_error  # noqa: E402
from pyscript_app.reference.kvcache import KVCache  # noqa: E402

V = 50257


def _time(ex, record, sync, reps: int) -> float:
    """Median ms per call of record(), reps calls per submission, 3 runs after an untimed one."""
    runs = []
    for i in range(4):
        t0 = time.perf_counter()
        for _ in range(reps):
            record()
        ex.submit()
        sync()
        if i:
            runs.append((time.perf_counter() - t0) * 1e3 / reps)
    return statistics.median(runs)


def head_variants(ex, C: int, reps: int) -> list[dict]:
    rng = np.random.default_rng(C)
    x, wte = rng.standard_normal((1, C)).astype(np.float32), rng.standard_normal((V, C)).astype(np.float32)
    bx, bw, out = ex.upload(x.tobytes()), ex.upload(wte.tobytes()), ex.alloc(V * 4)
    ref = (x.astype(np.float64) @ wte.astype(np.float64).T)[0]
    dims = {"N": 1, "K": V, "M": C, "accumulate": 0}

    def sync():
        run_sync(ex.read(out, 4))

    def check() -> float:
        got = np.frombuffer(run_sync(ex.read(out, V * 4)), np.float32)
        return relative_error(got, ref)

    rows = []
    variants = [("matvec_transposed", {"WG": wg, "LANES": lanes}) for wg in (64, 256) for lanes in (1, 2, 4, 8, 16, 32)
                if lanes <= wg]
    tiles = matmul_forward_overrides("matmul_backward_dx", 1, C, V, ex.adapter_info, ex.max_workgroup_bytes)
    variants.append((tied_head_entry(C, ex.adapter_info), tiles))
    for kernel, over in variants:
        def record(kernel=kernel, over=over):
            ex.dispatch(kernel, [bx, bw, out], dims, overrides=over)
        ms = _time(ex, record, sync, reps)
        rows.append({"C": C, "kernel": kernel, "overrides": over, "ms": ms, "rel_err": check(),
                     "gb_per_s": V * C * 4 / ms / 1e6})
        print(f"head C={C} {kernel} {over}: {ms:.4f} ms, {rows[-1]['gb_per_s']:.0f} GB/s, err {rows[-1]['rel_err']:.2e}",
              flush=True)
    for b in (bx, bw, out):
        ex.release(b)
    return rows


def decode(ex, cfg: GPT2Config, steps: int) -> dict:
    params = gpt2.init_params(cfg, seed=0)
    t0 = time.perf_counter()
    weights = Gpt2Weights.upload(ex, cfg, params)
    run_sync(ex.read(weights["ln_f.bias"], 4))
    upload_s = time.perf_counter() - t0
    dec = Gpt2Decoder(ex, weights)
    prompt = np.random.default_rng(1).integers(0, cfg.vocab_size, size=32).tolist()
    run_sync(dec.prefill(prompt))  # warm-up: pipelines compiled
    t0 = time.perf_counter()
    logits = np.asarray(run_sync(dec.prefill(prompt)))
    prefill_ms = (time.perf_counter() - t0) * 1e3
    err = relative_error(logits, gpt2.prefill(cfg, params, KVCache(cfg, 1), np.array([prompt]))[0])
    token, times, record_ms = int(np.argmax(logits)), [], []
    for n in range(steps):
        t0 = time.perf_counter()
        dec.record_step(token, len(prompt) + n)
        t1 = time.perf_counter()
        out = run_sync(dec._read(dec.step_rows.logits, cfg.vocab_size))
        times.append((time.perf_counter() - t0) * 1e3)
        record_ms.append((t1 - t0) * 1e3)
        token = int(np.argmax(np.frombuffer(out, np.float32)))
    submits = ex.stats["submits"]
    run_sync(dec.step(token, len(prompt) + steps))
    weight_bytes = sum(t.nbytes for t in params.values()) - (cfg.padded_vocab - cfg.vocab_size) * cfg.n_embd * 4
    res = {"config": cfg.to_dict(), "upload_s": upload_s, "prefill_tokens": len(prompt), "prefill_ms": prefill_ms,
           "prefill_rel_err": err, "steps": steps, "ms_per_token_median": statistics.median(times),
           "ms_per_token_min": min(times), "record_ms_median": statistics.median(record_ms),
           "submits_per_step": ex.stats["submits"] - submits, "weight_bytes": weight_bytes}
    print(f"decode {cfg.n_layer}x{cfg.n_embd}: prefill {prefill_ms:.2f} ms (err {err:.2e}), "
          f"{res['ms_per_token_median']:.3f} ms/token (min {res['ms_per_token_min']:.3f}, recording "
          f"{res['record_ms_median']:.3f})", flush=True)
    dec.release()
    weights.release(ex)
    return res


def main():
    engine, out_path = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    ex = open_device(engine)
    out = {"question": __doc__.split("\n\n")[0], "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "command": " ".join(["python3", "benchmarks/probes/decode_probe.py", *sys.argv[1:]]),
           "adapter": ex.adapter_info, "head": []}
    for C in (64,) if smoke else (64, 768):  # (wte of 124M is 154 MB: past a CPU adapter's 128 MB binding)
        out["head"] += head_variants(ex, C, reps=5 if smoke else 50)
        Path(out_path).write_text(json.dumps(out, indent=1))
    small = GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=128, vocab_size=V, vocab_multiple=64)
    out["decode"] = decode(ex, small if smoke else gpt2_size("gpt2", vocab_multiple=64), 16 if smoke else 64)
    Path(out_path).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
