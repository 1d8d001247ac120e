"""Question: where does a KV-cached decode step of GPT-2 124M go (gpu/gpt2_model.py), kernel by kernel, and how
much of `tabgpt bench --inference`'s ms/token is GPU time at all?

The step's plan (recorded once at position 32 after a 32-token prefill) is replayed:
- whole, `reps` times in one submission: the host's replay time per step (recording only) and the GPU's
  (the wait after the submission, divided by reps: the GPU starts only once the submission is made);
- item by item, each alone `reps` times in one submission: the GPU time per dispatch, summed per kernel;
- one step at a time with an 8-byte read after each (what generation does): the wall time per token.
Per weight type (f32, f16).

    python3 benchmarks/probes/decode_profile.py dawn OUT.json [--smoke]
"""
import collections
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from pyscript_app.gpu.executor import Plan, run_sync  # noqa: E402
from pyscript_app.gpu.gpt2_model import Gpt2Decoder  # noqa: E402
from pyscript_app.gpu.gpt2_weights import Gpt2Weights  # noqa: E402
from pyscript_app.gpu.native import open_device  # noqa: E402
from pyscript_app.reference import gpt2  # noqa: E402
from pyscript_app.reference.gpt2_config import GPT2Config, gpt2_size  # noqa: E402


def _gpu_ms(ex, plan: Plan, reps: int, sync) -> tuple[float, float]:
    """(host ms, GPU ms) per replay of `plan`, `reps` replays in one submission."""
    ex.replay(plan)
    ex.submit()
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        ex.replay(plan)
    t1 = time.perf_counter()
    ex.submit()
    sync()
    t2 = time.perf_counter()
    return (t1 - t0) * 1e3 / reps, (t2 - t1) * 1e3 / reps


def profile(ex, cfg: GPT2Config, dtype: str, reps: int) -> dict:
    params = gpt2.init_params(cfg, seed=0)
    weights = Gpt2Weights.upload(ex, cfg, params, dtype)
    dec = Gpt2Decoder(ex, weights)
    prompt = np.random.default_rng(1).integers(0, cfg.vocab_size, size=32).tolist()
    run_sync(dec.prefill(prompt))
    run_sync(dec.step(7, 32))  # records the step's plan
    (plan,) = dec._step_plans.values()
    sync = lambda: run_sync(ex.read(dec.step_rows.logits, 4))  # noqa: E731
    names = {pl: key[0] for key, pl in ex._pipelines.items()}
    host, whole = _gpu_ms(ex, plan, reps, sync)
    per, counts = collections.defaultdict(float), collections.Counter()
    for item in plan.items:
        label = names.get(item[1], item[0]) if item[0] == "dispatch" else item[0]
        per[label] += _gpu_ms(ex, Plan((item,)), reps, sync)[1]
        counts[label] += 1
    walls = []
    for n in range(reps):
        t0 = time.perf_counter()
        dec.record_step(7, 33)
        sync()
        walls.append((time.perf_counter() - t0) * 1e3)
    rows = sorted(per.items(), key=lambda kv: -kv[1])
    print(f"== {cfg.n_layer}x{cfg.n_embd} {dtype}: {plan.dispatches} dispatches; whole step GPU {whole:.3f} ms "
          f"(host replay {host:.3f} ms); sum of isolated items {sum(per.values()):.3f} ms; one step with its "
          f"read {statistics.median(walls):.3f} ms (median of {reps})", flush=True)
    for k, v in rows:
        print(f"  {k:36s} {counts[k]:3d}  {v:8.3f} ms", flush=True)
    dec.release()
    weights.release(ex)
    return {"dtype": dtype, "config": cfg.to_dict(), "dispatches": plan.dispatches, "step_gpu_ms": whole,
            "step_host_replay_ms": host, "sum_isolated_ms": sum(per.values()),
            "step_with_read_ms_median": statistics.median(walls),
            "per_kernel": {k: [counts[k], v] for k, v in rows}}


def main():
    engine, out_path = sys.argv[1], sys.argv[2]
    smoke = "--smoke" in sys.argv
    ex = open_device(engine)
    cfg = (GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=128, vocab_size=50257, vocab_multiple=64)
           if smoke else gpt2_size("gpt2", vocab_multiple=64))
    dtypes = ["f32", "f16"]
    out = {"question": __doc__.split("\n\n")[0], "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "command": " ".join(["python3", "benchmarks/probes/decode_profile.py", *sys.argv[1:]]),
           "adapter": ex.adapter_info, "runs": []}
    for dtype in dtypes:
        out["runs"].append(profile(ex, cfg, dtype, 5 if smoke else 50))
        Path(out_path).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
