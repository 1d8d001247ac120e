"""Question: how should GPT-2's products be laid out and split when decoding one token, and what does a whole
KV-cached decode step of the 124M shape cost with gpu/gpt2_model.py, with f32 and with f16 weights?

1. matvec.wgsl's matvec_rows_bias (weights stored one row per output) at the 124M shapes (K, M) = (768, 2304),
   (768, 768), (768, 3072), (3072, 768) and the tied head (768, 50,257, matvec_rows), for several LANES
   (invocations per row) and workgroup sizes, in f32 and f16: the median ms per dispatch of
   `reps` dispatches in one submission after an untimed run of as many, and the GB/s of weights read.
2. gpu/gpt2_model.Gpt2Decoder on the 124M shape with GPT-2's random initialisation, per weight type: a
   32-token prefill, then 64 decode steps, each recorded, submitted and its V logits read back (what sampling
   with a host-side choice does): the median ms per step, and the prefill's ms; the prefill's logits against
   the numpy reference on the same (rounded) weights. --smoke: small shapes and the tests' config instead.

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
from pyscript_app.gpu.gpt2_model import Gpt2Decoder  # noqa: E402
from pyscript_app.gpu.gpt2_weights import Gpt2Weights, stored_narrow  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402
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


def rows_variants(ex, reps: int, shapes, dtype: str) -> list[dict]:
    suffix, wtype = ("_f16", np.float16) if dtype == "f16" else ("", np.float32)
    rows = []
    variants = [{"WG": wg, "LANES": lanes} for wg in (64, 128, 256) for lanes in (4, 8, 16, 32)]
    for K, M in shapes:
        rng = np.random.default_rng(K + M)
        x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((1, K), (M, K), (M,)))
        w = w.astype(wtype)
        bx, bw, bb, y = ex.upload(x.tobytes()), ex.upload(w.tobytes()), ex.upload(b.tobytes()), ex.alloc(M * 4)
        head = M > 8 * K  # the tied head: no bias
        ref = (x.astype(np.float64) @ w.astype(np.float64).T)[0] + (0 if head else b)
        kernel = ("matvec_rows" if head else "matvec_rows_bias") + suffix
        bound = [bx, bw, y] if head else [bx, bw, bb, y]
        dims = {"N": 1, "K": K, "M": M, "accumulate": 0}
        for over in variants:
            def record(over=over):
                ex.dispatch(kernel, bound, dims, overrides=over)
            ms = _time(ex, record, lambda: run_sync(ex.read(y, 4)), reps)
            err = relative_error(np.frombuffer(run_sync(ex.read(y, M * 4)), np.float32), ref)
            rows.append({"kernel": kernel, "K": K, "M": M, "overrides": over, "ms": ms, "rel_err": err,
                         "gb_per_s": w.nbytes / ms / 1e6})
            print(f"{kernel} {K}x{M} {over}: {ms:.4f} ms, {rows[-1]['gb_per_s']:.0f} GB/s, err {err:.2e}", flush=True)
        for buf in (bx, bw, bb, y):
            ex.release(buf)
    return rows


def decode(ex, cfg: GPT2Config, steps: int, dtype: str) -> dict:
    params = gpt2.init_params(cfg, seed=0)
    if dtype == "f16":  # the values the GPU stores: the reference computes with them
        params = {k: v.astype(np.float16).astype(np.float32) if stored_narrow(k) else v for k, v in params.items()}
    t0 = time.perf_counter()
    weights = Gpt2Weights.upload(ex, cfg, params, dtype)
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
    res = {"dtype": dtype, "config": cfg.to_dict(), "upload_s": upload_s, "prefill_tokens": len(prompt), "prefill_ms": prefill_ms,
           "prefill_rel_err": err, "steps": steps, "ms_per_token_median": statistics.median(times),
           "ms_per_token_min": min(times), "record_ms_median": statistics.median(record_ms),
           "submits_per_step": ex.stats["submits"] - submits, "weight_bytes": weight_bytes}
    print(f"decode {cfg.n_layer}x{cfg.n_embd} {dtype}: prefill {prefill_ms:.2f} ms (err {err:.2e}), "
          f"{res['ms_per_token_median']:.3f} ms/token (min {res['ms_per_token_min']:.3f}, recording "
          f"{res['record_ms_median']:.3f})", flush=True)
    dec.release()
    weights.release(ex)
    return res


def main():
    engine, out_path = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    ex = open_device(engine)
    dtypes = ["f32", "f16"]
    out = {"question": __doc__.split("\n\n")[0], "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "command": " ".join(["python3", "benchmarks/probes/decode_probe.py", *sys.argv[1:]]),
           "adapter": ex.adapter_info, "features": sorted(ex.features), "rows": [], "decode": []}
    shapes = ((132, 203), (64, 4000)) if smoke else ((768, 2304), (768, 768), (768, 3072), (3072, 768), (768, 50257))
    for dtype in dtypes:
        out["rows"] += rows_variants(ex, 5 if smoke else 50, shapes, dtype)
        Path(out_path).write_text(json.dumps(out, indent=1))
    small = GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=128, vocab_size=V, vocab_multiple=64)
    for dtype in dtypes:
        out["decode"].append(decode(ex, small if smoke else gpt2_size("gpt2", vocab_multiple=64), 16 if smoke else 64,
                                    dtype))
        Path(out_path).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
