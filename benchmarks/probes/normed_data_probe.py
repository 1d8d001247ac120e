"""Question: why do the step's normed products (matmul_forward_rmsnorm(_relu) at `large`'s qkv and fc
shapes) take ~0.23 / 0.34 ms per dispatch in the step profile, when shader_dirs_probe times the same
entry and overrides at ~0.15 / 0.20 ms on random buffers? Is it the data or the bindings?

    python3 benchmarks/probes/normed_data_probe.py dawn|wgpu-native OUT.json [MODEL]

One process, one timing method (step_profile's: R replays in one submission, less an idle read-back):
  step       the step's own dispatch (its bindings, the data one training step left in them)
  own-rand   the same entry and overrides on fresh buffers of N(0,1) values
  own-step   fresh buffers holding the step's data (x, w, gamma read back from the step's buffers)
  step-rand  the step's dispatch after its x and weight ranges are overwritten with N(0,1) values
  step-again the step's dispatch again, its data restored (the first figure's GPU state, not its data?)
  marginal   (the step with this kernel's dispatches doubled - the step) / their count, back to back"""
import asyncio, json, sys, time
from array import array
import numpy as np
sys.path.insert(0, '.')
from pyscript_app.config import TrainConfig
from pyscript_app.gpu.executor import Plan, run_sync
from pyscript_app.gpu.matmul_rules import matmul_forward_overrides
from pyscript_app.gpu.native import open_device
from pyscript_app.gpu.registry import matmul_entry
from pyscript_app.gpu.trainer_backend import GpuBackend

ex = open_device(sys.argv[1])
tc = TrainConfig(model=sys.argv[3] if len(sys.argv) > 3 else "large", batch=8, log_every=1000)
mc = tc.model_cfg()
be = GpuBackend(mc, tc, ex)
asyncio.run(be.init(1))
N, C = 8 * mc.block_size, mc.n_embd
toks = array('H', np.random.default_rng(0).integers(0, mc.vocab_size, N).astype(np.uint16).tobytes())
for _ in range(3):
    asyncio.run(be.step(toks, toks, 1e-3))
asyncio.run(be.pop_losses())
REPS = 20


def idle_read():
    t = time.perf_counter(); ex.submit(); run_sync(ex.read(be.params, 4)); return time.perf_counter() - t


idle = sorted(idle_read() for _ in range(7))[3]


def timed(plan):  # GPU ms per replay, median of 5 runs of REPS replays in one submission
    ex.replay(plan); ex.submit(); run_sync(ex.read(be.params, 4))
    runs = []
    for _ in range(5):
        t1 = time.perf_counter()
        for _ in range(REPS):
            ex.replay(plan)
        ex.submit(); run_sync(ex.read(be.params, 4))
        runs.append(max(0.0, time.perf_counter() - t1 - idle) / REPS * 1e3)
    return sorted(runs)[2]


names = {pl: key[0] + " " + "x".join(str(dict(key[1]).get(k)) for k in ("TM", "TN")) for key, pl in ex._pipelines.items()}
items = [it for it in be._step_plan.items if it[0] == "dispatch"]
first = {}
for it in items:
    first.setdefault(names.get(it[1], "?"), it)
ops, lay = be.ops, be.layout
rng = np.random.default_rng(1)


def read_range(name):
    lo, n = lay.byte_range(name)
    return run_sync(ex.read(be.params, n, lo))


def own(kernel, K, M, x, w, g):
    bufs = [ex.upload(x), ex.upload(w), ex.upload(g)] + [ex.alloc(4 * n) for n in (N * M, N * K, N)]
    ex.begin_plan()
    ex.dispatch(matmul_entry(kernel, N, K, M, ex.adapter_info), bufs, {"N": N, "K": K, "M": M, "eps": 1e-5},
                overrides=matmul_forward_overrides(kernel, N, K, M, ex.adapter_info, ex.max_workgroup_bytes))
    plan = ex.end_plan()
    ms = timed(plan)
    for b in bufs:
        ex.release(b)
    return ms


out = {"device": ex.adapter_info, "idle_read_ms": idle * 1e3, "reps": REPS, "rows": {}}
cases = [("fc", "matmul_forward_rmsnorm_relu", C, 4 * C, ops.x_mid[0], "h0.fc", "h0.ln2"),
         ("qkv", "matmul_forward_rmsnorm", C, 3 * C, ops.x[0], "h0.qkv", "h0.ln1")]
for tag, kernel, K, M, xbuf, wname, gname in cases:
    label = next(k for k in first if k.startswith(kernel + "_v4 ") or k.startswith(kernel + " "))
    step_item = next(it for it in items if names.get(it[1]) == label)
    row = {"label": label, "flop": 2 * N * K * M}
    row["step"] = timed(Plan((step_item,)))
    x_step = run_sync(ex.read(xbuf, N * K * 4))
    w_step, g_step = read_range(wname), read_range(gname)
    xs = np.frombuffer(x_step, np.float32)
    ws = np.frombuffer(w_step, np.float32)
    row["data"] = {"x_std": float(xs.std()), "x_absmax": float(np.abs(xs).max()), "w_std": float(ws.std()),
                   "x_tiny": int((np.abs(xs) < 1.2e-38).sum()), "w_tiny": int((np.abs(ws) < 1.2e-38).sum()),
                   "g_mean": float(np.frombuffer(g_step, np.float32).mean())}
    rand = lambda n: rng.standard_normal(n, dtype=np.float32).tobytes()  # noqa: E731
    row["own-rand"] = own(kernel, K, M, rand(N * K), rand(K * M), rand(K))
    row["own-step"] = own(kernel, K, M, x_step, w_step, g_step)
    row["own-step-x-rand-w"] = own(kernel, K, M, x_step, rand(K * M), g_step)
    row["own-rand-x-step-w"] = own(kernel, K, M, rand(N * K), w_step, g_step)
    ex.write(xbuf, rand(N * K))
    lo, _ = lay.byte_range(wname)
    ex.write(be.params, rand(K * M), lo)
    row["step-rand"] = timed(Plan((step_item,)))
    ex.write(xbuf, x_step)
    ex.write(be.params, w_step, lo)
    row["step-again"] = timed(Plan((step_item,)))
    # the marginal cost inside the running step: the whole step, and the step with each of this
    # kernel's dispatches doubled, replayed back to back (the GPU never idles between items)
    doubled = tuple(x for it in be._step_plan.items for x in ((it, it) if it[0] == "dispatch" and names.get(it[1]) == label else (it,)))
    whole, more = timed(be._step_plan), timed(Plan(doubled))
    row["whole_step"], row["marginal"] = whole, (more - whole) / sum(1 for it in items if names.get(it[1]) == label)
    for k in ("step", "own-rand", "own-step", "own-step-x-rand-w", "own-rand-x-step-w", "step-rand", "step-again", "marginal"):
        row[k + "_tflops"] = row["flop"] / row[k] / 1e9 if row[k] else None
    out["rows"][tag] = row
    print(tag, label, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)}, row["data"], flush=True)
json.dump(out, open(sys.argv[2], "w"), indent=1)
