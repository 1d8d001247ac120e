"""Question: where does a training step's GPU time go, kernel by kernel (what to speed up next for the
`large` step's target of 1.0x PyTorch)?

GPU time per dispatch of one training step: each item of the step's plan replayed alone, 20 times in
one submission, summed per kernel (and tile); the whole step replayed for comparison.

    python3 benchmarks/probes/step_profile.py dawn|wgpu-native OUT.json MODEL [MODEL ...]

Isolated timings miss the overlap and cache effects of the real sequence, so their sum differs from
the step's time by a few percent (seen on an H200: 33.4 vs 32.3 ms for `large`)."""
import asyncio, sys, time, json, collections
import numpy as np
sys.path.insert(0, '.')
from array import array
from pyscript_app.config import TrainConfig
from pyscript_app.gpu.trainer_backend import GpuBackend
from pyscript_app.gpu.native import open_device
from pyscript_app.gpu.executor import Plan, run_sync

engine = sys.argv[1]; out = {}
ex = open_device(engine)
for name in sys.argv[3:]:
    tc = TrainConfig(model=name, batch=8, log_every=1000)
    mc = tc.model_cfg()
    be = GpuBackend(mc, tc, ex)
    asyncio.run(be.init(1))
    N = 8 * mc.block_size
    xa = array('H', np.random.default_rng(0).integers(0, mc.vocab_size, N).astype(np.uint16).tobytes())
    asyncio.run(be.step(xa, xa, 1e-3)); asyncio.run(be.pop_losses())
    def label(kernel, ov):  # e.g. matmul_backward_split_v4 64x64r4, matmul_forward_residual_v4 32x32r4k4
        if 'TM' not in ov:
            return kernel
        extra = (f"r{ov['RPI']}" if ov.get('RPI', 8) != 8 else '') + (f"k{ov['KGROUPS']}" if ov.get('KGROUPS', 1) != 1 else '')
        return f"{kernel} {ov['TM']}x{ov['TN']}{extra}"
    names = {pl: label(key[0], dict(key[1])) for key, pl in ex._pipelines.items()}
    plan = be._step_plan
    reps = 20
    per = collections.defaultdict(float); counts = collections.Counter()
    total = 0.0
    for i, item in enumerate(plan.items):
        one = Plan((item,))
        ex.replay(one); ex.submit(); run_sync(ex.read(be.params, 4))
        t0 = time.perf_counter()
        for _ in range(reps): ex.replay(one)
        ex.submit(); run_sync(ex.read(be.params, 4))
        dt = (time.perf_counter() - t0) / reps * 1e3
        label = names.get(item[1], item[0]) if item[0] == 'dispatch' else item[0]
        per[label] += dt; counts[label] += 1; total += dt
    # the whole step, replayed
    t0 = time.perf_counter()
    for _ in range(reps): ex.replay(plan)
    ex.submit(); run_sync(ex.read(be.params, 4))
    step = (time.perf_counter() - t0) / reps * 1e3
    rows = sorted(per.items(), key=lambda kv: -kv[1])
    print(f"== {name}: sum of isolated dispatches {total:.3f} ms, whole step replayed {step:.3f} ms")
    for k, v in rows: print(f"  {k:40s} {counts[k]:3d}  {v:8.3f} ms")
    out[name] = {"sum_ms": total, "step_ms": step, "per_kernel": {k: [counts[k], v] for k, v in rows}}
json.dump(out, open(sys.argv[2], 'w'), indent=1)
